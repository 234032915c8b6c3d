"""Tokens/s and model FLOPs utilisation of BART-base pre-training steps at
length 128 in bf16 on one GPU (the paper's setting), with DeepSpeed ZeRO-2 as
`train/pretrain.py` uses it.

MFU = 6 * N * tokens/s / peak bf16 FLOP/s, N = parameter count, tokens =
sequence positions (a source token runs through the encoder, its target token
through the decoder, each about N/2; attention FLOPs are small at length 128). Peak defaults to the
H100 SXM dense bf16 figure (989 TFLOP/s); pass --peak-tflops for other cards.

    python -m bench.pretrain_gpu [--micro-batch 64] [--steps 30] [--peak-tflops 989]

Builds BART-base from its config (no download needed) with a random batch of
the right shape: this measures the model step, not the data path (see
bench/pretrain_throughput.py for that).
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--micro-batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()

    import deepspeed
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    for k, v in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
    }.items():
        os.environ.setdefault(k, v)
    deepspeed.init_distributed("nccl", verbose=False)
    cfg = BartConfig(
        vocab_size=50265,
        d_model=768,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=12,
        decoder_attention_heads=12,
        encoder_ffn_dim=3072,
        decoder_ffn_dim=3072,
        max_position_embeddings=1024,
    )
    model = BartForConditionalGeneration(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=opt,
        config={
            "train_micro_batch_size_per_gpu": args.micro_batch,
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": 2},
            "bf16": {"enabled": True},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
        },
    )
    g = torch.Generator(device="cuda").manual_seed(0)
    shape = (args.micro_batch, args.seq_len)
    src = torch.randint(5, cfg.vocab_size, shape, device="cuda", generator=g)
    labels = torch.randint(5, cfg.vocab_size, shape, device="cuda", generator=g)
    for step in range(args.steps):
        if step == args.warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = engine(input_ids=src, labels=labels).loss
        engine.backward(loss)
        engine.step()
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    # one "token" = one source position with its target position: each passes through
    # the encoder or the decoder half of N, so 6 * N * tokens counts both halves once
    tokens = (args.steps - args.warmup) * args.micro_batch * args.seq_len
    tps = tokens / secs
    mfu = 6 * n_params * tps / (args.peak_tflops * 1e12)
    print(
        f"{torch.cuda.get_device_name()}: BART-base ({n_params / 1e6:.0f} M params), micro-batch "
        f"{args.micro_batch} x {args.seq_len}: {tps:,.0f} tokens/s, MFU {mfu:.1%} "
        f"(peak {args.peak_tflops:.0f} TFLOP/s)"
    )


if __name__ == "__main__":
    main()

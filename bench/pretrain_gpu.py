"""Tokens/s and model FLOPs utilisation of BART-base pre-training steps at
length 128 in bf16 on one GPU (the paper's setting), with DeepSpeed as
`train/pretrain.py` uses it: the vocabulary padded as the paper config pads
it (`--pad-vocab`, default that config's value), optionally compiled with
one static shape as the recipe compiles it (`--recipe-compile`), against a
plain PyTorch loop (the vocabulary as it is, eager; `--compile` adds it
compiled).

MFU = 6 * N * tokens/s / peak bf16 FLOP/s, N = parameter count, tokens =
sequence positions (a source token runs through the encoder, its target token
through the decoder, each about N/2; attention FLOPs are small at length 128). Peak defaults to the
H100 SXM dense bf16 figure (989 TFLOP/s); pass --peak-tflops for other cards.
N is the unpadded model's: the padded vocabulary's extra rows do no useful work.
Hours are for the paper's 100,000 steps x 2,048 examples x 128 tokens.

    python -m bench.pretrain_gpu [--micro-batch 64] [--steps 30] [--peak-tflops 989]
        [--zero-stages 0,1,2] [--accum 8] [--fused] [--compile] [--recipe-compile]
        [--pad-vocab 64] [--profile 4]
    python -m bench.pretrain_gpu --rehearse --micro-batch 4 --steps 6 --warmup 2   # CPU

`--profile N` runs N more micro-batches of each row under torch.profiler and
prints where the time went (bench/kernel_profile.py), after every row's
tokens/s are printed.

Builds BART-base from its config (no download needed) with a random batch of
the right shape: this measures the model step, not the data path (see
bench/pretrain_throughput.py for that).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

PAPER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "bart_base_paper.yaml"
PAPER_TOKENS = 100_000 * 2048 * 128


def paper_pad_vocab() -> int:
    """The paper config's `pad_vocab_to_multiple_of` (what the recipe trains with)."""
    from maskpt.core.config import read_yaml_mapping

    return int(read_yaml_mapping(PAPER_CONFIG).get("pad_vocab_to_multiple_of", 1))


def _timed(step, steps: int, warmup: int, sync) -> float:
    for k in range(steps):
        if k == warmup:
            sync()
            t0 = time.perf_counter()
        step()
    sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--micro-batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument(
        "--zero-stages",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[2],
        help="ZeRO stages to time the recipe with, e.g. 0,1,2 (train/pretrain.py: 2)",
    )
    ap.add_argument(
        "--accum",
        type=int,
        default=1,
        help="micro-batches per optimizer step in both loops (the paper's 2,048 "
        "examples per step are 16 micro-batches of 128 on one GPU); "
        "--steps and --warmup count micro-batches: make them multiples",
    )
    ap.add_argument(
        "--grad-clip",
        type=float,
        default=1.0,
        help="gradient clipping in both loops (train/pretrain.py's default: 1.0)",
    )
    ap.add_argument(
        "--fused",
        action="store_true",
        help="the recipe's AdamW with fused=True (train/pretrain.py uses the default)",
    )
    ap.add_argument(
        "--compile", action="store_true", help="also time the plain loop with torch.compile(model)"
    )
    ap.add_argument(
        "--recipe-compile",
        action="store_true",
        help="also time each recipe row with the model compiled before DeepSpeed wraps it, "
        "with one static shape (train/pretrain.py's compile=true, compile_options.dynamic=false)",
    )
    ap.add_argument(
        "--pad-vocab",
        type=int,
        default=None,
        metavar="MULTIPLE",
        help="the recipe's vocabulary padded to a multiple of this (default: the paper "
        "config's pad_vocab_to_multiple_of; 1: unpadded)",
    )
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the timings, N micro-batches of each row under torch.profiler: time by "
        "kernel kind, top kernels, the device's busy share",
    )
    ap.add_argument(
        "--lm-head",
        action="store_true",
        help="only time the LM head's GEMMs (forward + both backward) at the "
        "vocabulary 50,265 against 50,304 (padded to 64)",
    )
    ap.add_argument(
        "--rehearse",
        action="store_true",
        help="without CUDA: a tiny model in fp32 on CPU over gloo (checks the script)",
    )
    args = ap.parse_args()

    if args.lm_head:
        return lm_head(args)
    import deepspeed
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from bench.kernel_profile import profile_steps
    from train.distributed import zero_config
    from train.model import pad_vocab

    cuda = torch.cuda.is_available()
    if not cuda and not args.rehearse:
        raise SystemExit("needs a CUDA GPU (--rehearse runs a tiny model on CPU)")
    for k, v in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
    }.items():
        os.environ.setdefault(k, v)
    deepspeed.init_distributed("nccl" if cuda else "gloo", verbose=False)
    size = (
        dict(
            d_model=768,
            encoder_layers=6,
            decoder_layers=6,
            encoder_attention_heads=12,
            decoder_attention_heads=12,
            encoder_ffn_dim=3072,
            decoder_ffn_dim=3072,
        )
        if cuda
        else dict(
            d_model=64,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
        )
    )
    cfg = BartConfig(vocab_size=50265 if cuda else 1000, max_position_embeddings=1024, **size)
    device = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    g = torch.Generator(device=device).manual_seed(0)
    shape = (args.micro_batch, args.seq_len)
    src = torch.randint(5, cfg.vocab_size, shape, device=device, generator=g)
    labels = torch.randint(5, cfg.vocab_size, shape, device=device, generator=g)

    torch.manual_seed(0)
    n_params = sum(p.numel() for p in BartForConditionalGeneration(cfg).parameters())
    pad = args.pad_vocab if args.pad_vocab is not None else paper_pad_vocab()
    # one "token" = one source position with its target position: each passes through
    # the encoder or the decoder half of N, so 6 * N * tokens counts both halves once
    tokens = (args.steps - args.warmup) * args.micro_batch * args.seq_len
    name = torch.cuda.get_device_name() if cuda else "CPU (rehearsal, tiny model, fp32)"
    accum = f", {args.accum} per optimizer step" if args.accum > 1 else ""
    print(
        f"{name}: {n_params / 1e6:.0f} M params (vocabulary {cfg.vocab_size:,}), micro-batch "
        f"{args.micro_batch} x {args.seq_len}{accum}, {args.steps} micro-batches "
        f"({args.warmup} untimed)",
        flush=True,
    )
    baselines: dict[str, float] = {}
    recipes: dict[str, float] = {}

    def show(label: str, step) -> float:
        """Time `step`, print its line (and its profile), return its seconds."""
        secs = _timed(step, args.steps, args.warmup, sync)
        tps = tokens / secs
        line = f"{label}: {tps:,.0f} tokens/s"
        if cuda:
            mfu = 6 * n_params * tps / (args.peak_tflops * 1e12)
            line += f", MFU {mfu:.1%}, {PAPER_TOKENS / tps / 3600:.1f} h for the paper's run"
        for base, base_secs in baselines.items():
            line += f"; {base_secs / secs:.2f}x the {base}"
        print(line, flush=True)
        if args.profile:
            print(profile_steps(step, args.profile, cuda, label), flush=True)
        return secs

    # the baseline first: plain PyTorch, the vocabulary as it is, bf16 autocast, fused
    # AdamW, same clip
    torch.manual_seed(0)
    plain_model = BartForConditionalGeneration(copy.deepcopy(cfg)).to(device)
    opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-4, fused=cuda)
    micro = [0]

    def plain_step(m=plain_model):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
            loss = m(input_ids=src, labels=labels).loss
        (loss / args.accum).backward()
        micro[0] += 1
        if micro[0] % args.accum:
            return
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(m.parameters(), args.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    baselines["plain loop"] = show("plain PyTorch loop (eager)", plain_step)

    for stage in args.zero_stages:  # the recipe's DeepSpeed config, as train/pretrain.py builds it
        for compiled in (False, True) if args.recipe_compile else (False,):
            torch.manual_seed(0)
            model = pad_vocab(BartForConditionalGeneration(copy.deepcopy(cfg)), pad)  # own config
            if compiled:  # as the recipe: in place, before DeepSpeed wraps it
                model.compile(dynamic=False)
            opt_r = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=args.fused and cuda)
            ds = zero_config(
                args.micro_batch * args.accum,
                args.micro_batch,
                args.accum,
                args.grad_clip,
                stage,
                cuda,
            )
            engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt_r, config=ds)

            def recipe_step(engine=engine):
                loss = engine(input_ids=src, labels=labels).loss
                engine.backward(loss)
                engine.step()

            extra = ", fused AdamW" if args.fused else ""
            extra += f", vocabulary padded to {model.config.vocab_size:,}" if pad > 1 else ""
            extra += ", compiled (one static shape)" if compiled else ", eager"
            label = f"recipe (DeepSpeed ZeRO-{stage}{extra})"
            recipes[label] = show(label, recipe_step)
            del engine, model, opt_r, recipe_step
            if cuda:
                torch.cuda.empty_cache()
    if args.compile:  # compilation happens in the warm-up steps, outside the timing
        compiled_plain = torch.compile(plain_model)
        baselines["compiled plain loop"] = show(
            "plain loop, torch.compile", lambda: plain_step(compiled_plain)
        )
    best = min(baselines.values())  # the faster plain loop
    for label, secs in recipes.items():
        print(f"{label} = {best / secs:.2f}x the best plain loop (goal >= 0.95x)")


def lm_head(args) -> None:
    """The LM head's three GEMMs per micro-batch (logits, d hidden, d weight)
    at BART-base's vocabulary and at it padded to a multiple of 64."""
    import torch

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows, d = args.micro_batch * args.seq_len, 768 if cuda else 64
    hidden = torch.randn(rows, d, device=device, dtype=dtype)
    times = {}
    for vocab in (50265, 50304) if cuda else (1000, 1024):
        weight = torch.randn(vocab, d, device=device, dtype=dtype)
        grad = torch.randn(rows, vocab, device=device, dtype=dtype)

        def gemms(weight=weight, grad=grad):
            hidden @ weight.T  # logits
            grad @ weight  # d hidden
            grad.T @ hidden  # d weight

        times[vocab] = _timed(gemms, args.steps, args.warmup, sync)
    (v0, t0), (v1, t1) = times.items()
    flops = 3 * 2 * rows * d
    for vocab, secs in times.items():
        tflops = flops * vocab * (args.steps - args.warmup) / secs / 1e12
        print(
            f"LM head GEMMs, {rows} rows x {d} x vocab {vocab:,}: {secs / (args.steps - args.warmup) * 1e3:.2f} ms per micro-batch, {tflops:.0f} TFLOP/s"
        )
    print(f"vocabulary {v1:,} vs {v0:,}: {t0 / t1:.2f}x the speed per micro-batch")


if __name__ == "__main__":
    main()

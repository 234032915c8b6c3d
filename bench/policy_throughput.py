"""Learned-policy costs, each against a baseline measured in the same run.

1. `sup_v1` inference (BiLSTM over 768-d embeddings, hidden 300, span
   ranking): tokens/s at batch 1 vs a large batch (target >= 20x on CPU).
   The same for `meta_v1`'s masker.
2. One meta step (Algorithm 1) vs one plain pre-training step of the same
   BART on the same batch (target <= 5x), with `higher` and with
   `torch.func.functional_call`: time and peak memory (CUDA: max allocated;
   CPU: peak RSS of a fresh process per backend).

    python -m bench.policy_throughput [--device cpu|cuda] [--model tiny|base]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

VOCAB = 50265


def bart(size: str):
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    if size == "base":
        cfg = BartConfig(vocab_size=VOCAB)  # bart-base shape
    else:
        cfg = BartConfig(
            vocab_size=VOCAB,
            d_model=128,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=512,
            decoder_ffn_dim=512,
        )
    cfg._attn_implementation = "eager"
    return BartForConditionalGeneration(cfg)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def inference(device, big: int, seconds: float = 3.0) -> dict:
    from policies.networks import MetaMasker, SpanExtractor, top_spans

    torch.manual_seed(0)
    sup = SpanExtractor(VOCAB, 768, 300, 2).to(device).eval()
    meta = MetaMasker(torch.randn(VOCAB, 768) * 0.02, 256).to(device).eval()
    out = {}
    for name, fn in (
        ("sup_v1", lambda ids, att: top_spans(*sup(ids, att), att.bool(), 10, 5)),
        ("meta_v1", lambda ids, att: torch.softmax(meta(ids), -1)),
    ):
        rates = {}
        for b in (1, big):
            ids = torch.randint(5, VOCAB, (b, 128), device=device)
            att = torch.ones_like(ids)
            with torch.no_grad():
                fn(ids, att)
                sync(device)
                t0, n = time.perf_counter(), 0
                while time.perf_counter() - t0 < seconds:
                    fn(ids, att)
                    n += 1
                sync(device)
            rates[b] = n * b * 128 / (time.perf_counter() - t0)
        out[name] = {
            "tokens_per_s_batch1": round(rates[1]),
            f"tokens_per_s_batch{big}": round(rates[big]),
            "ratio": round(rates[big] / rates[1], 1),
        }
    return out


def step_times(device, size: str, backend: str, steps: int) -> dict:
    """Seconds per plain pre-train step and per meta step (median of steps)."""
    from policies.networks import MetaMasker
    from train.meta_policy import MetaConfig, meta_step

    model = bart(size).to(device).train()
    masker = MetaMasker(model.get_input_embeddings().weight, 256).to(device)
    b, length = 8, 128
    ids = torch.randint(5, VOCAB, (b, length), device=device)
    batch = {
        "ctx": ids,
        "ctx_att": torch.ones_like(ids),
        "ctx_labels": ids.clone(),
        "content": torch.ones(b, length, device=device),
        "q": ids[:, :24].clone(),
        "q_att": torch.ones(b, 24, dtype=torch.long, device=device),
        "a": ids[:, :6].clone(),
    }
    cfg = MetaConfig(examples="-", backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def plain():
        loss = model(input_ids=ids, attention_mask=batch["ctx_att"], labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def meta():
        meta_step(model, masker, batch, cfg, 4, gen)
        masker.zero_grad(set_to_none=True)

    res = {}
    for name, fn in (("plain", plain), ("meta", meta)):
        fn()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        ts = []
        for _ in range(steps):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            ts.append(time.perf_counter() - t0)
        res[f"{name}_s"] = sorted(ts)[len(ts) // 2]
        if device.type == "cuda":
            res[f"{name}_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    res["ratio"] = res["meta_s"] / res["plain_s"]
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", choices=["tiny", "base"], default="tiny")
    ap.add_argument("--batch", type=int, default=256, help="large inference batch")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", choices=["higher", "func"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.only:  # child process: one backend, so peak RSS is its own
        print(json.dumps(step_times(device, args.model, args.only, args.steps)))
        return 0
    print(json.dumps({"device": str(device), "inference": inference(device, args.batch)}))
    for backend in ("higher", "func"):
        cmd = [
            sys.executable,
            __file__,
            "--device",
            args.device,
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--only",
            backend,
        ]
        res = json.loads(subprocess.check_output(cmd).decode().strip().splitlines()[-1])
        print(
            json.dumps(
                {
                    "backend": backend,
                    "model": args.model,
                    **{k: round(v, 4) for k, v in res.items()},
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

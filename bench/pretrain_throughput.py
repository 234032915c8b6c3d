"""`train/pretrain.py` (DeepSpeed, streaming shards) against a plain PyTorch loop
over the same tiny model, batches and optimizer, in the same run, on CPU.

Prints tokens/s of both and their ratio (target >= 0.9: the data path and
DeepSpeed add at most 10%), and the shard reader alone in examples/s against
what training consumes (target >= 20x): with the stored masks, and drawing
each example's mask for its epoch (the default `data.remask: per_epoch`) with
the folder's policy (rand_v1) and with orig_v1 (sentence permutation and
Poisson spans: the costliest draw), in one process (the training loop's
own; DataLoader workers only add to it).

    python -m bench.pretrain_throughput [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_shards(out: Path, tok, n_docs: int = 400) -> None:
    """Synthetic documents masked with rand_v1 into an Arrow shard folder (no Ray)."""
    import json

    import numpy as np

    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess

    rng = np.random.default_rng(0)
    words = [
        "the",
        "of",
        "and",
        "a",
        "in",
        "to",
        "was",
        "is",
        "for",
        "on",
        "as",
        "by",
        "with",
        "from",
        "at",
        "his",
        "that",
        "an",
        "were",
        "which",
    ]
    words += [f"w{i}" for i in range(300)]
    inp = out.parent / "docs.jsonl"
    with inp.open("w") as f:
        for i in range(n_docs):
            text = " ".join(
                " ".join(rng.choice(words, size=12)).capitalize() + "." for _ in range(8)
            )
            f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    cfg = PreprocessConfig(
        inputs=(str(inp),),
        output=str(out),
        policy="rand_v1",
        tokenizer=tok.name_or_path,
        docs_per_unit=100,
        shard_size=1000,
    )
    run_preprocess(cfg, progress=False, use_ray=False)


def setup(work: Path, steps: int, overrides: list[str]):
    """Tokenizer, shard folder and the run's config (tiny_cpu.yaml plus overrides)."""
    from maskpt.core.config import load_config
    from maskpt.core.resources import bundled_texts
    from maskpt.core.tokenizer import train_tokenizer
    from train.pretrain import PretrainConfig

    texts = bundled_texts()
    tok = train_tokenizer(texts * 3 + [" ".join(f"w{i}" for i in range(300))], work / "tok",
                          vocab_size=2000, min_frequency=1)  # fmt: skip
    make_shards(work / "shards", tok)
    over = [f"data.shards=[{work / 'shards'}]", f"model.tokenizer={work / 'tok'}",
            f"output_dir={work / 'run'}", f"total_steps={steps}", "log_every=1", "save_every=0",
            "export=false", "optim.warmup_steps=5", "model.config.dropout=0.0", *overrides]  # fmt: skip
    return tok, load_config(PretrainConfig, ROOT / "configs" / "pretrain" / "tiny_cpu.yaml", over)


def plain_rate(cfg, tok, batches, steps: int, warmup: int) -> float:
    """Tokens/s of a plain PyTorch loop: same model init, pre-collated batches, same optimizer."""
    import torch

    from train.model import build_model
    from train.pretrain import lr_lambda

    accum = cfg.global_batch // cfg.micro_batch
    model = build_model(cfg.model, tok, cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr,
                            weight_decay=cfg.optim.weight_decay)  # fmt: skip
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    tokens, t0 = 0, None
    for step in range(steps):
        if step == warmup:
            tokens, t0 = 0, time.perf_counter()
        for a in range(accum):
            b = dict(batches[step * accum + a])
            b.pop("ids")
            (model(**b).loss / accum).backward()
            tokens += int(b["attention_mask"].sum()) + int((b["labels"] != -100).sum())
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5, help="steps excluded from the timing")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. zero_stage=0")
    args = ap.parse_args()

    from dataclasses import replace

    import torch

    from maskpt.core.tokenizer import TokenizerInfo
    from preprocess.remask import Remasker
    from train.data import PretrainStream, collate, open_source
    from train.pretrain import train

    work = Path(tempfile.mkdtemp(prefix="maskpt-ptbench-"))
    tok, cfg = setup(work, args.steps, args.set)
    print(f"tiny BART {cfg.model.config}, global batch {cfg.global_batch}, micro "
          f"{cfg.micro_batch}, {args.steps} steps, {torch.get_num_threads()} threads")  # fmt: skip
    train(cfg)  # 1. the recipe (DeepSpeed ZeRO-1, gloo, one process, streaming shards)
    logs = [json.loads(x) for x in (work / "run" / "log.jsonl").read_text().splitlines()]
    timed = logs[args.warmup :]
    ds_rate = sum(r["tokens"] for r in timed) / sum(r["seconds"] for r in timed)
    src = open_source(str(work / "shards"))  # 2. plain PyTorch over the same batches
    stream = PretrainStream([src], cfg.micro_batch, 0, 1, cfg.seed)
    accum = cfg.global_batch // cfg.micro_batch
    batches = [collate(stream.micro_batch(k), tok.pad_token_id) for k in range(args.steps * accum)]
    plain = plain_rate(cfg, tok, batches, args.steps, args.warmup)
    readers = {"stored masks (remask: fixed)": None}  # 3. the reader alone
    for policy in ("rand_v1", "orig_v1"):
        readers[f"drawn per epoch, {policy}"] = Remasker(src.index, TokenizerInfo.from_tokenizer(tok),
                                                         policy)  # fmt: skip
    reader_eps = {}
    for name, remasker in readers.items():
        reader = PretrainStream([replace(src, remasker=remasker)], cfg.micro_batch, 0, 1,
                                cfg.seed + 1)  # fmt: skip
        start = src.size // cfg.micro_batch  # from epoch 1 on: every mask a fresh draw
        t = time.perf_counter()
        n_micro = 400
        for k in range(start, start + n_micro):
            collate(reader.micro_batch(k), tok.pad_token_id)
        reader_eps[name] = n_micro * cfg.micro_batch / (time.perf_counter() - t)
    tokens_per_example = sum(
        int(b["attention_mask"].sum()) + int((b["labels"] != -100).sum()) for b in batches
    ) / (len(batches) * cfg.micro_batch)
    train_eps = ds_rate / tokens_per_example
    print(f"\ntrain/pretrain.py (DeepSpeed):  {ds_rate:10,.0f} tokens/s")
    print(f"plain PyTorch loop:             {plain:10,.0f} tokens/s")
    print(f"  -> ratio {ds_rate / plain:.2f} (target >= 0.9)")
    print(f"training consumes {train_eps:,.0f} examples/s; the reader alone delivers:")
    for name, eps in reader_eps.items():
        print(f"  {name:30s} {eps:10,.0f} examples/s -> {eps / train_eps:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()

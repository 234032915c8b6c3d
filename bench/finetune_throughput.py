"""Fine-tuning throughput: the recipe (`train/finetune.py`, on transformers'
`Seq2SeqTrainer`) against the hand-written loop it replaced, and its
generation against a plain `generate` loop — same BART, data and batch, in
the same run: a tiny BART on CPU by default; `--size base` (BART-base's
layers and widths, the bench's 2,000-token vocabulary) on a GPU.

- training examples/s: the recipe's `train_examples_per_s` (optimizer steps
  with their data loading; evaluation, logging and checkpoints excluded)
  vs the pre-Trainer loop of commit e1f0789, reproduced below: label-smoothed
  loss from the logits, dropout seeded per micro-step, clip, AdamW, linear
  warm-up, one batch collated per step (goal >= 0.9x);
- generation examples/s: the recipe's evaluation (`Trainer.predict` over
  length-sorted batches, beam 4, 1-20 tokens) vs `generate` over the
  examples in file order (goal >= 0.9x).

Medians of --repeats alternating runs.

    python -m bench.finetune_throughput [--steps 40] [--repeats 3]
    python -m bench.finetune_throughput --device cuda --size base --precision bf16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    "tiny": dict(
        d_model=128,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=512,
        decoder_ffn_dim=512,
    ),
    "base": dict(
        d_model=768,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=12,
        decoder_attention_heads=12,
        encoder_ffn_dim=3072,
        decoder_ffn_dim=3072,
    ),
}


def make_world(folder: Path, n_train: int, n_dev: int, size: str = "tiny"):
    """Tokenizer, a BART of `size` (tiny: d_model 128, 2+2 layers) and a
    zsRE-format task whose sources are 10-60 words of the bundled text."""
    import numpy as np
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from maskpt.core.resources import bundled_texts
    from maskpt.core.tokenizer import train_tokenizer
    from train.model import export_pretrained

    texts = bundled_texts()
    tok = train_tokenizer(texts, folder / "tok", vocab_size=2000, min_frequency=1)
    words = " ".join(texts).split()
    rng = np.random.default_rng(0)
    data = folder / "data"
    data.mkdir()
    for split, n in (("train", n_train), ("dev", n_dev)):
        with (data / f"structured_zeroshot-{split}-kilt.jsonl").open("w") as f:
            for i in range(n):
                k = int(rng.integers(0, len(words) - 80))
                src = " ".join(words[k : k + int(rng.integers(10, 60))])
                ans = " ".join(words[k + 70 : k + 70 + int(rng.integers(1, 4))])
                rec = {"id": f"{split}{i}", "input": src, "output": [{"answer": ans}]}
                f.write(json.dumps(rec) + "\n")
    torch.manual_seed(0)
    cfg = BartConfig(
        vocab_size=len(tok),
        **SIZES[size],
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
        forced_eos_token_id=tok.eos_token_id,
    )
    export_pretrained(BartForConditionalGeneration(cfg), tok, folder / "model")
    return folder / "model", data


def old_loop(
    model_dir, data, steps: int, batch: int, device: str = "cpu", bf16: bool = False
) -> float:
    """The hand-written fine-tuning loop before the Trainer (e1f0789's
    train/ft_loop.py, one process): examples/s over its optimizer steps
    (on a GPU: the batch moved there, bf16 under autocast when asked)."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, BartForConditionalGeneration

    from maskpt.core.batching import pad_seq2seq
    from maskpt.core.seeding import micro_seed
    from train.seq2seq import encode
    from train.tasks import load_split

    tok = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    model = BartForConditionalGeneration.from_pretrained(
        model_dir, dropout=0.1, attention_dropout=0.1
    ).to(device)
    enc = encode(tok, load_split("zsre", data, "train"), 256, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    order = np.random.default_rng([0, 0]).permutation(len(enc)).tolist()
    model.train()
    train_s = 0.0
    for step in range(steps):
        t = time.perf_counter()
        idx = order[step * batch : (step + 1) * batch]
        b = pad_seq2seq(
            [enc[i].source for i in idx], [enc[i].target for i in idx], tok.pad_token_id
        )
        b = {k: v.to(device) for k, v in b.items()}
        torch.manual_seed(micro_seed(0, step, 0, 0))
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**b).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(),
            b["labels"].reshape(-1),
            ignore_index=-100,
            label_smoothing=0.1,
        )
        if not torch.isfinite(loss).item():
            raise FloatingPointError("non-finite loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        train_s += time.perf_counter() - t
    return steps * batch / train_s


def recipe(model_dir, data, out: Path, steps: int, batch: int, precision: str = "auto") -> float:
    from train.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        task="zsre",
        data_dir=str(data),
        model=str(model_dir),
        output_dir=str(out),
        lr=1e-4,
        batch_size=batch,
        max_steps=steps,
        eval_every=steps,
        max_eval_examples=8,
        num_beams=1,
        max_gen_length=2,
        max_source_length=256,
        warmup_steps=10,
        log_every=steps,
        precision=precision,
        report_to=("none",),
    )
    return finetune(cfg)["train_examples_per_s"]


def generation(model_dir, data, batch: int, device: str = "cpu") -> tuple[float, float]:
    """(plain generate loop, the recipe's evaluation) examples/s on dev + test."""
    import torch
    from transformers import AutoTokenizer, BartForConditionalGeneration, Seq2SeqTrainingArguments

    from maskpt.core.batching import pad_ids
    from train.finetune import FinetuneConfig, Scorer, _trainer_class, evaluate, load_model
    from train.seq2seq import Collator, encode
    from train.tasks import load_split

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BartForConditionalGeneration.from_pretrained(model_dir).eval().to(device)
    examples = load_split("zsre", data, "dev") + load_split("zsre", data, "test")
    enc = encode(tok, examples, 256, 128)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(enc), batch):
            ids, att = pad_ids([e.source for e in enc[i : i + batch]], tok.pad_token_id)
            model.generate(
                input_ids=ids.to(device),
                attention_mask=att.to(device),
                num_beams=4,
                min_new_tokens=1,
                max_new_tokens=20,
                early_stopping=True,
            )
    plain = len(enc) / (time.perf_counter() - t0)
    cfg = FinetuneConfig(task="zsre", data_dir=str(data), model=str(model_dir), dropout=0.0)
    tok, model = load_model(cfg)
    args = Seq2SeqTrainingArguments(
        output_dir=str(data.parent / "gen"),
        use_cpu=device == "cpu",
        per_device_eval_batch_size=batch,
        predict_with_generate=True,
        remove_unused_columns=False,
        report_to="none",
    )
    trainer = _trainer_class()(
        model=model,
        args=args,
        processing_class=tok,
        data_collator=Collator(tok.pad_token_id, model.config.decoder_start_token_id),
        compute_metrics=(scorer := Scorer(tok, "em", False)),
    )
    t0 = time.perf_counter()
    evaluate(trainer, scorer, examples, enc)
    return plain, len(enc) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: the recipe's precision=bf16 and autocast in the old loop",
    )
    args = ap.parse_args()
    dev, bf16 = args.device, args.precision == "bf16"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, data = make_world(
            Path(tmp), n_train=args.steps * args.batch, n_dev=256, size=args.size
        )
        train_ratios, gen_ratios = [], []
        for r in range(args.repeats):
            run = Path(tmp) / f"r{r}"
            if r % 2:
                rec = recipe(model_dir, data, run, args.steps, args.batch, args.precision)
                base = old_loop(model_dir, data, args.steps, args.batch, dev, bf16)
            else:
                base = old_loop(model_dir, data, args.steps, args.batch, dev, bf16)
                rec = recipe(model_dir, data, run, args.steps, args.batch, args.precision)
            g_plain, g_rec = generation(model_dir, data, 64, dev)
            train_ratios.append(rec / base)
            gen_ratios.append(g_rec / g_plain)
            row = {
                "train_old_loop": base,
                "train_recipe": rec,
                "gen_plain": g_plain,
                "gen_recipe": g_rec,
            }
            print(json.dumps({k: round(v, 1) for k, v in row.items()}), flush=True)
    print(
        json.dumps(
            {
                "device": dev,
                "size": args.size,
                "precision": args.precision,
                "finetune_vs_old_loop_median": round(statistics.median(train_ratios), 3),
                "generation_vs_plain_median": round(statistics.median(gen_ratios), 3),
                "target": ">= 0.9 each",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

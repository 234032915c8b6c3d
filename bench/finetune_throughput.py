"""`train/finetune.py` against plain PyTorch / `generate` loops over the same
tiny BART, data and batch size, in the same run, on CPU.

Prints fine-tuning examples/s (recipe: label-smoothed loss, accumulation
stepper, seeded dropout, data stream; baseline: `model(**batch).loss`,
backward, clip, AdamW step collating each batch from the same encoded examples) and generation examples/s
(recipe: length-sorted batched beam search; baseline: `generate` over the
examples in file order), each as a ratio (target >= 0.9). Medians of
--repeats alternating runs.

    python bench/finetune_throughput.py [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_world(folder: Path, n_train: int, n_dev: int):
    """Tokenizer, tiny BART (d_model 128, 2+2 layers) and a zsRE-format task
    whose sources are 10-60 words of the bundled text."""
    import json as _json

    import numpy as np
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from maskpt.demo import bundled_corpus
    from maskpt.tokenizer import train_tokenizer

    texts = [_json.loads(x)["text"] for x in bundled_corpus().read_text().splitlines()]
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
                f.write(_json.dumps(rec) + "\n")
    torch.manual_seed(0)
    cfg = BartConfig(vocab_size=len(tok), d_model=128, encoder_layers=2, decoder_layers=2,
                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=512,
                     decoder_ffn_dim=512, max_position_embeddings=256,
                     pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id,
                     forced_eos_token_id=tok.eos_token_id)  # fmt: skip
    BartForConditionalGeneration(cfg).save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    return folder / "model", data


def plain_train(model_dir, data, steps: int, batch: int) -> float:
    import torch
    from transformers import AutoTokenizer, BartForConditionalGeneration

    from train.seq2seq import collate, encode
    from train.tasks import load_split

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BartForConditionalGeneration.from_pretrained(model_dir, dropout=0.1)
    enc = encode(tok, load_split("zsre", data, "train"), 256, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    model.train()
    t0 = time.perf_counter()
    for s in range(steps):
        i = (s * batch) % len(enc)
        loss = model(**collate(enc[i : i + batch], tok.pad_token_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * batch / (time.perf_counter() - t0)


def recipe_train(model_dir, data, out: Path, steps: int, batch: int) -> float:
    from train.finetune import FinetuneConfig
    from train.ft_loop import finetune

    cfg = FinetuneConfig(task="zsre", data_dir=str(data), model=str(model_dir),
                         output_dir=str(out), lr=1e-4, batch_size=batch, max_steps=steps,
                         eval_every=steps, max_eval_examples=8, num_beams=1, max_gen_length=2,
                         max_source_length=256, warmup_steps=10)  # fmt: skip
    return finetune(cfg)["train_examples_per_s"]


def generation(model_dir, data, batch: int) -> tuple[float, float]:
    import torch
    from transformers import AutoTokenizer, BartForConditionalGeneration

    from train.seq2seq import collate, encode, predict
    from train.tasks import load_split

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BartForConditionalGeneration.from_pretrained(model_dir).eval()
    examples = load_split("zsre", data, "dev") + load_split("zsre", data, "test")
    enc = encode(tok, examples, 256, 128)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(enc), batch):
            b = collate(enc[i : i + batch], tok.pad_token_id)
            model.generate(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                num_beams=4,
                min_new_tokens=1,
                max_new_tokens=20,
                early_stopping=True,
            )
    plain = len(enc) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    predict(model, tok, enc, batch, 4, 1, 20, torch.device("cpu"))
    return plain, len(enc) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, data = make_world(Path(tmp), n_train=args.steps * args.batch, n_dev=256)
        train_ratios, gen_ratios, rows = [], [], []
        for r in range(args.repeats):
            if r % 2:
                rec = recipe_train(model_dir, data, Path(tmp) / f"r{r}", args.steps, args.batch)
                base = plain_train(model_dir, data, args.steps, args.batch)
            else:
                base = plain_train(model_dir, data, args.steps, args.batch)
                rec = recipe_train(model_dir, data, Path(tmp) / f"r{r}", args.steps, args.batch)
            g_plain, g_rec = generation(model_dir, data, 64)
            train_ratios.append(rec / base)
            gen_ratios.append(g_rec / g_plain)
            rows.append({"train_plain": base, "train_recipe": rec, "gen_plain": g_plain,
                         "gen_recipe": g_rec})  # fmt: skip
            print(json.dumps({k: round(v, 1) for k, v in rows[-1].items()}))
    result = {
        "finetune_ratio_median": round(statistics.median(train_ratios), 3),
        "generation_ratio_median": round(statistics.median(gen_ratios), 3),
        "target": ">= 0.9 each",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Plain helpers for the tests: text generators, tiny models and task files,
small shard folders. Fixtures that use them are in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from maskpt.core.records import Segment
from maskpt.core.resources import bundled_texts
from maskpt.core.tokenizer import TokenizerInfo, build_segment, tokenize_text
from preprocess.segment import segment_document

SHARED_DATA = Path(
    os.environ.get("MASKPT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "pretrain" / "tiny_cpu.yaml"

__all__ = [
    "ROOT",
    "SHARED_DATA",
    "TINY",
    "bundled_texts",
    "encode_segment",
    "make_segments",
    "make_shards",
    "mask_with_entities",
    "run_cfg",
    "run_main",
    "save_tiny_bart",
    "synthetic_texts",
    "write_jsonl",
    "write_tiny_qa",
]


def _vocabulary() -> list[str]:
    words = sorted({w.strip(".,()") for t in bundled_texts() for w in t.split()} - {""})
    return [w for w in words if w.isalpha() and w.islower()]


def synthetic_texts(n: int, seed: int = 0, sentences=(1, 4), words=(4, 12)) -> list[str]:
    """Deterministic pseudo-English: `n` texts of a few sentences each."""
    rng = np.random.default_rng(seed)
    vocab = _vocabulary()
    out = []
    for _ in range(n):
        sents = []
        for _ in range(rng.integers(sentences[0], sentences[1] + 1)):
            ws = list(rng.choice(vocab, size=rng.integers(words[0], words[1] + 1)))
            ws[0] = ws[0].capitalize()
            sents.append(" ".join(ws) + ".")
        out.append(" ".join(sents))
    return out


def make_segments(tokenizer, texts, max_length=128, prefix="d"):
    segs = []
    for i, t in enumerate(texts):
        segs += [
            s
            for s in segment_document(tokenizer, f"{prefix}{i}", t, max_length)
            if hasattr(s, "input_ids")
        ]
    return segs


def write_jsonl(path, texts, prefix="doc"):
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"{prefix}{i}", "title": f"T{i}", "text": t}) + "\n")
    return path


def save_tiny_bart(tokenizer, folder, seed: int = 0, d_model: int = 32) -> str:
    """A tiny randomly initialised BART plus the test tokenizer, saved as a
    Hugging Face folder (what a pre-training export looks like)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from train.model import export_pretrained

    torch.manual_seed(seed)
    cfg = BartConfig(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=160,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    export_pretrained(BartForConditionalGeneration(cfg), tokenizer, folder)
    return str(folder)


RELATIONS = {"colour": "blue", "place": "river", "maker": "stone", "season": "winter"}


def write_tiny_qa(folder, n_train=64, n_dev=32, seed=0, prefix="structured_zeroshot") -> str:
    """A tiny zsRE-format (KILT) task: `subject [SEP] relation` -> an answer
    fixed by the relation, so a tiny model can learn it in a few steps."""
    rng = np.random.default_rng(seed)
    vocab = _vocabulary()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        with open(folder / f"{prefix}-{split}-kilt.jsonl", "w") as f:
            for i in range(n):
                rel = list(RELATIONS)[int(rng.integers(len(RELATIONS)))]
                subj = " ".join(rng.choice(vocab, size=2))
                rec = {
                    "id": f"{split}{i}",
                    "input": f"{subj} [SEP] {rel}",
                    "output": [{"answer": RELATIONS[rel]}],
                }
                f.write(json.dumps(rec) + "\n")
    return str(folder)


def make_shards(out, tokenizer, fmt="arrow", policy="rand_v1", n_synthetic=60, **kw):
    """A small shard folder written in-process (no Ray) from the bundled
    paragraphs plus synthetic texts."""
    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess

    out = Path(out)
    texts = bundled_texts() + synthetic_texts(n_synthetic, seed=21, sentences=(1, 3))
    inp = write_jsonl(out.parent / f"in-{out.name}.jsonl", texts, prefix="d")
    spec = dict(
        inputs=(str(inp),),
        output=str(out),
        policy=policy,
        tokenizer=tokenizer.name_or_path,
        shard_size=23,
        max_length=64,
        format=fmt,
        docs_per_unit=20,
    )
    spec.update(kw)
    run_preprocess(PreprocessConfig(**spec), progress=False, use_ray=False)
    return out


def run_cfg(tmp_path, shards, tokenizer, **over):
    args = [
        f"data.shards=[{shards}]",
        f"model.tokenizer={tokenizer.name_or_path}",
        f"output_dir={tmp_path}",
        "max_length=64",
        "model.config.max_position_embeddings=80",
        "debug_records=true",
        "log_every=1",
    ]
    args += [f"{k}={v}" for k, v in over.items()]
    return args


def run_main(args, tmp_path, via_cli: bool = False, rc: int = 0):
    """`python train/pretrain.py ...` (what the deepspeed launcher runs) or
    `maskpt pretrain ...`, in a fresh process (DeepSpeed keeps process-group
    state per process, so each run gets its own); checks the exit status."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    entry = ["-m", "maskpt", "pretrain"] if via_cli else [str(ROOT / "train" / "pretrain.py")]
    proc = subprocess.run(
        [sys.executable, *entry, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def mask_with_entities(policy, segments, seed: int, entities, epoch: int = 0) -> list:
    """`ssm_v1`'s `mask_batch` with the entities given, so no NER runs: annotate, then draw."""
    return policy.draw_all(segments, policy.annotate_entities(segments, entities), seed, epoch)


def encode_segment(
    tokenizer, text: str, seg_id: str, doc_id: str | None = None, max_length: int = 128
) -> Segment:
    """Tokenize a short text as one segment. Raises ValueError when the text is
    empty or longer than `max_length` tokens (use `preprocess.segment` to cut
    documents)."""
    if not text or text.isspace():
        raise ValueError(f"segment {seg_id!r}: text is empty")
    info = TokenizerInfo.from_tokenizer(tokenizer)
    ids, offsets = tokenize_text(tokenizer, text)
    if len(ids) + 2 > max_length:
        raise ValueError(
            f"segment {seg_id!r}: {len(ids) + 2} tokens > max_length {max_length}; "
            "cut it with preprocess.segment.segment_document"
        )
    return build_segment(seg_id, doc_id if doc_id is not None else seg_id, text, ids, offsets, info)

"""Shared fixtures: a byte-level BPE trained in the test session on the bundled
paragraphs plus generated sentences, and generators of segments. Nothing is
downloaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from maskpt.demo import bundled_corpus
from maskpt.tokenizer import TokenizerInfo, train_tokenizer
from preprocess.segment import segment_document

SHARED_DATA = Path(
    os.environ.get("MASKPT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def bundled_texts() -> list[str]:
    return [json.loads(line)["text"] for line in bundled_corpus().read_text().splitlines()]


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


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    texts = bundled_texts() + synthetic_texts(200, seed=99)
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=1200, min_frequency=1)


@pytest.fixture(scope="session")
def tok_info(tokenizer):
    return TokenizerInfo.from_tokenizer(tokenizer)


def make_segments(tokenizer, texts, max_length=128, prefix="d"):
    segs = []
    for i, t in enumerate(texts):
        segs += [
            s
            for s in segment_document(tokenizer, f"{prefix}{i}", t, max_length)
            if hasattr(s, "input_ids")
        ]
    return segs


@pytest.fixture(scope="session")
def many_segments(tokenizer):
    """About 3,000 multi-sentence segments for statistical tests."""
    return make_segments(tokenizer, synthetic_texts(3000, seed=1))


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (set MASKPT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs) shared by all tests that need it."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tokenizer_dir(tokenizer):
    return tokenizer.name_or_path


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
    BartForConditionalGeneration(cfg).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bart(tokenizer, tmp_path_factory):
    return save_tiny_bart(tokenizer, tmp_path_factory.mktemp("tiny_bart"))


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
                rec = {"id": f"{split}{i}", "input": f"{subj} [SEP] {rel}",
                       "output": [{"answer": RELATIONS[rel]}]}  # fmt: skip
                f.write(json.dumps(rec) + "\n")
    return str(folder)


@pytest.fixture(scope="session")
def tiny_qa(tmp_path_factory):
    return write_tiny_qa(tmp_path_factory.mktemp("tiny_qa"))

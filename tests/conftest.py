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

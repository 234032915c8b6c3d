"""The supervised span extractor learns a synthetic "the answer is the year"
task; deployment modes and the span limit; counts of dropped examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.networks import top_spans
from tests.helpers import _vocabulary
from train.supervised_policy import SupervisedConfig, train


def write_year_examples(path, n=400, seed=0):
    rng = np.random.default_rng(seed)
    vocab = _vocabulary()
    with open(path, "w") as f:
        for i in range(n):
            words = list(rng.choice(vocab, size=int(rng.integers(6, 14))))
            year = str(int(rng.integers(1500, 2020)))
            words.insert(int(rng.integers(1, len(words))), year)
            f.write(json.dumps({"id": i, "context": " ".join(words) + ".", "answer": year}) + "\n")
        f.write(json.dumps({"id": "x", "context": "no number here.", "answer": "1999"}) + "\n")


@pytest.fixture(scope="module")
def year_policy(tmp_path_factory, tiny_bart):
    d = tmp_path_factory.mktemp("sup")
    write_year_examples(d / "ex.jsonl")
    cfg = SupervisedConfig(
        examples=str(d / "ex.jsonl"),
        model=tiny_bart,
        output_dir=str(d / "ckpt"),
        epochs=100,
        max_steps=300,
        lr=1e-2,
        batch_size=32,
        hidden=32,
        max_span_length=6,
    )
    return cfg, train(cfg, progress=False)


def test_learns_the_year_span(year_policy):
    cfg, summary = year_policy
    assert summary["val_top1"] >= 0.9
    assert summary["dropped"] == {"answer_absent": 1}
    meta = json.loads(Path(cfg.output_dir, "policy.json").read_text())
    assert meta["policy"] == "sup_v1" and meta["training"]["val_top1"] == summary["val_top1"]


def test_top_spans_respect_length_and_allowed_positions():
    g = torch.Generator().manual_seed(0)
    start, end = torch.randn(3, 12, generator=g), torch.randn(3, 12, generator=g)
    allowed = torch.ones(3, 12, dtype=torch.bool)
    allowed[:, 0] = allowed[:, -1] = False
    best, s, e = top_spans(start, end, allowed, max_len=3, k=5)
    assert ((e >= s) & (e - s < 3)).all() and (s > 0).all() and (e < 11).all()
    assert (best[:, :-1] >= best[:, 1:]).all()
    # brute force agrees on the best span
    for b in range(3):
        cands = [
            (float(start[b, i] + end[b, j]), i, j)
            for i in range(1, 11)
            for j in range(i, min(i + 3, 11))
        ]
        assert max(cands)[1:] == (int(s[b, 0]), int(e[b, 0]))


def test_top_spans_rank_ties_by_position_like_a_sort():
    """Rounded scores tie often; the ranking must not depend on the kernel's
    tie order (CPU and CUDA topk differ): score, then start, then end."""
    g = torch.Generator().manual_seed(1)
    start = torch.randint(-2, 3, (4, 9), generator=g).float() / 2  # few distinct values
    end = torch.randint(-2, 3, (4, 9), generator=g).float() / 2
    start[0] = -0.0  # -0.0 and 0.0 are one score
    end[0] = 0.0
    allowed = torch.ones(4, 9, dtype=torch.bool)
    allowed[3, 2:] = False  # row 3: fewer allowed spans than k
    best, s, e = top_spans(start, end, allowed, max_len=4, k=8)
    for b in range(4):
        cands = sorted(
            (-float(start[b, i] + end[b, j]), i, j)
            for i in range(9)
            for j in range(i, min(i + 4, 9))
            if allowed[b, i] and allowed[b, j]
        )
        got = [
            (-float(x), int(i), int(j))
            for x, i, j in zip(best[b], s[b], e[b], strict=True)
            if x != float("-inf")
        ]
        assert got == cands[:8]


def test_config_needs_examples():
    with pytest.raises(ValueError, match="examples"):
        SupervisedConfig()
    with pytest.raises(ValueError, match="'ay2' has no policy-training reader"):
        SupervisedConfig(task="ay2", data_dir="x")
    SupervisedConfig(task="nq", data_dir="x")  # NQ through DPR's passages


def test_too_few_usable_examples_is_one_line_naming_the_file(tmp_path, tiny_bart, capsys):
    from maskpt.cli import main

    write_year_examples(tmp_path / "ex.jsonl", n=1)  # one usable example and one absent answer
    rc = main(
        [
            "train-policy",
            "supervised",
            f"examples={tmp_path / 'ex.jsonl'}",
            f"model={tiny_bart}",
            f"output_dir={tmp_path / 'out'}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"maskpt train-policy supervised: error: {tmp_path / 'ex.jsonl'}: 1 usable examples, "
        "at least 2 needed (dropped: {'answer_absent': 1})"
    )

"""Fine-tuning: a tiny BART learns a tiny QA task, writes predictions and
metrics; the data helpers are deterministic and lose nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from train.finetune import FinetuneConfig
from train.finetune import main as finetune_main
from train.seq2seq import global_batches, subset

ROOT = Path(__file__).resolve().parents[2]
FAST = ["num_beams=2", "max_gen_length=5", "warmup_steps=10", "eval_batch=32"]


def test_global_batches_cover_each_pass_exactly_once():
    batches = global_batches(10, 4, seed=3)
    flat = [i for _ in range(5) for i in next(batches)]  # 20 = two passes
    assert Counter(flat[:10]) == Counter(range(10))
    assert Counter(flat[10:]) == Counter(range(10))
    again = global_batches(10, 4, seed=3)
    assert [i for _ in range(5) for i in next(again)] == flat
    assert [i for _ in range(5) for i in next(global_batches(10, 4, seed=4))] != flat


def test_subset_is_fixed_by_its_own_seed():
    items = list(range(1000))
    a, b = subset(items, 0.01, 0), subset(items, 0.01, 0)
    assert a == b and len(a) == 10 and a != subset(items, 0.01, 1)
    assert subset(items, 0.0001, 0) and len(subset(items, 1.0, 0)) == 1000


def test_target_prefix_space_gives_the_in_sentence_tokens(tokenizer):
    from train.seq2seq import encode
    from train.tasks import TaskExample

    ex = [TaskExample("a", "Where did she work?", "Paris", ("Paris",))]
    plain = encode(tokenizer, ex, 32, 8)[0]
    spaced = encode(tokenizer, ex, 32, 8, prefix_space=True)[0]
    body = spaced.target[1:-1]  # without <s> and </s>
    inside = tokenizer("She lived in Paris")["input_ids"][:-1]
    assert inside[-len(body) :] == body
    assert tokenizer.decode(spaced.target, skip_special_tokens=True).strip() == "Paris"
    assert plain.target != spaced.target


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="task"):
        FinetuneConfig(task="squad", data_dir="x")
    with pytest.raises(ValueError, match="train_fraction"):
        FinetuneConfig(task="nq", data_dir="x", train_fraction=0)
    with pytest.raises(ValueError, match="micro_batch"):
        FinetuneConfig(task="nq", data_dir="x", batch_size=32, micro_batch=5)


def test_tiny_bart_improves_on_tiny_qa(tmp_path, tiny_bart, tiny_qa):
    out = tmp_path / "run"
    args = ["--task", "zsre", "--data-dir", tiny_qa, "--model", tiny_bart, "--output-dir",
            str(out), "lr=3e-3", "batch_size=16", "max_steps=150", "eval_every=50",
            "patience=0", *FAST]  # fmt: skip
    assert finetune_main(args) == 0
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [50, 100, 150]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dev"] >= 0.5 > log[0]["dev"] - 0.5  # learned: untrained output is garbage
    assert metrics["dev"] == max(r["dev"] for r in log)  # best checkpoint restored
    preds = [json.loads(x) for x in (out / "predictions.test.jsonl").read_text().splitlines()]
    assert len(preds) == metrics["test_examples"] == 16
    assert {"id", "prediction", "answers", "score"} <= set(preds[0])
    assert metrics["test"] == pytest.approx(sum(p["score"] for p in preds) / len(preds))


def test_untrained_model_scores_near_zero_and_train_fraction_applies(tmp_path, tiny_bart, tiny_qa):
    out = tmp_path / "run"
    args = ["--task", "zsre", "--data-dir", tiny_qa, "--model", tiny_bart, "--output-dir",
            str(out), "--train-fraction", "0.1", "lr=1e-6", "batch_size=4", "max_steps=2",
            *FAST]  # fmt: skip
    assert finetune_main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 6  # round(0.1 * 64)
    assert metrics["dev"] == 0.0


def test_missing_task_file_is_named(tmp_path, tiny_bart):
    from maskpt.cli import main

    rc = main(["finetune", "--task", "zsre", "--data-dir", str(tmp_path), "--model", tiny_bart])
    assert rc == 2


@pytest.mark.slow
def test_finetune_under_deepspeed_two_ranks(tmp_path, tiny_bart, tiny_qa):
    out = tmp_path / "ds"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["deepspeed", "--num_gpus", "2", "--master_port", "29641", str(ROOT / "train" / "finetune.py"),
           "--task", "zsre", "--data-dir", tiny_qa, "--model", tiny_bart, "--output-dir",
           str(out), "deepspeed=true", "lr=3e-3", "batch_size=16", "max_steps=20",
           "eval_every=10", *FAST]  # fmt: skip
    cmd[0] = os.path.join(os.path.dirname(sys.executable), "deepspeed")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["dev_examples"] == 16
    preds = (out / "predictions.dev.jsonl").read_text().splitlines()
    assert len(preds) == 16 and len({json.loads(p)["id"] for p in preds}) == 16


def test_non_finite_loss_stops_without_results(tmp_path, tiny_bart, tiny_qa, monkeypatch):
    import torch

    import train.ft_loop

    monkeypatch.setattr(train.ft_loop, "smoothed_loss", lambda *a: torch.tensor(float("nan")))
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="non-finite loss at step 0"):
        finetune_main(["--task", "zsre", "--data-dir", tiny_qa, "--model", tiny_bart,
                       "--output-dir", str(out), "max_steps=3", *FAST])  # fmt: skip
    assert not (out / "metrics.json").exists()

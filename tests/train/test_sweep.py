"""`maskpt sweep`: every run in its own folder, skipped when finished,
failures retried and reported, results feeding `maskpt report`."""

from __future__ import annotations

import json

import pytest

from maskpt.cli import main
from tests.helpers import save_tiny_bart, write_tiny_qa

QUICK = [
    "finetune.max_steps=20",
    "finetune.eval_every=10",
    "finetune.warmup_steps=5",
    "finetune.num_beams=1",
    "finetune.max_gen_length=4",
    "finetune.report_to=[none]",
]


@pytest.mark.slow  # the staged search below keeps a sweep in the fast loop
def test_two_checkpoints_two_tasks_two_seeds_then_rerun_then_report(tmp_path, tokenizer, capsys):
    a = save_tiny_bart(tokenizer, tmp_path / "ckpt_a", seed=1)
    b = save_tiny_bart(tokenizer, tmp_path / "ckpt_b", seed=2)
    data = tmp_path / "data"
    write_tiny_qa(data / "zsre", n_train=32, n_dev=16)
    write_tiny_qa(data / "ay2", n_train=32, n_dev=16, seed=5, prefix="aidayago2")
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--checkpoints",
        a,
        f"second={b}",
        "--tasks",
        "zsre",
        "ay2",
        "--data",
        str(data),
        "--out",
        str(out),
        "--lrs",
        "3e-3",
        "--batch-sizes",
        "8",
        "--seeds",
        "0",
        "1",
        "--search",
        "grid",
        *QUICK,
    ]
    assert main(args) == 0
    runs = sorted(p.parent.relative_to(out) for p in out.rglob("metrics.json"))
    assert [str(r) for r in runs] == [
        f"{ck}/{t}/lr0.003_bs8_seed{s}"
        for ck in ("ckpt_a", "second")
        for t in ("ay2", "zsre")
        for s in (0, 1)
    ]
    for r in runs:
        assert {"config.yaml", "log.txt", "predictions.test.jsonl"} <= {
            p.name for p in (out / r).iterdir()
        }
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["ran"] == 8 and summary["failed"] == []
    stamp = (out / runs[0] / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["ran"] == 0 and summary["skipped_finished"] == 8
    assert (out / runs[0] / "metrics.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    md = capsys.readouterr().out
    assert md.splitlines()[0] == "| checkpoint | ay2 | zsre |"
    assert md.count("| ckpt_a |") == 1 and md.count("| second |") == 1
    table = json.loads((out / "report.json").read_text())
    assert all(c["seeds"] == [0, 1] for c in table["cells"].values())


@pytest.mark.slow  # five fine-tuning runs
def test_staged_search_picks_the_better_rate_then_runs_its_seeds(tmp_path, tiny_bart, tiny_qa):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--checkpoints",
        f"tiny={tiny_bart}",
        "--tasks",
        "zsre",
        "--data",
        f"zsre={tiny_qa}",
        "--out",
        str(out),
        "--lrs",
        "1e-7",
        "3e-3",
        "--batch-sizes",
        "16",
        "--seeds",
        "0",
        "1",
        "--set",
        "finetune.max_steps=120",
        "finetune.eval_every=40",
        "finetune.warmup_steps=5",
        "finetune.num_beams=1",
        "finetune.max_gen_length=4",
        "finetune.report_to=[none]",
    ]
    assert main(args) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["chosen"] == {"tiny/zsre": {"lr": 0.003, "batch_size": 16}}
    assert summary["ran"] == 3  # 2 rates; batch 16 at the best rate is already done; seed 1
    assert (out / "tiny/zsre/lr0.003_bs16_seed1/metrics.json").exists()
    assert not (out / "tiny/zsre/lr1e-07_bs16_seed1").exists()


def test_failed_run_is_retried_and_reported(tmp_path, tiny_qa, capsys):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--checkpoints",
        str(tmp_path / "no_such_model"),
        "--tasks",
        "zsre",
        "--data",
        f"zsre={tiny_qa}",
        "--out",
        str(out),
        "--lrs",
        "1e-3",
        "--batch-sizes",
        "8",
        "--seeds",
        "0",
        "--retries",
        "1",
        *QUICK,
    ]
    assert main(args) == 1
    summary = json.loads((out / "sweep.json").read_text())
    assert len(summary["failed"]) == 1 and summary["ran"] == 2  # first try + one retry
    log = (out / "no_such_model/zsre/lr0.001_bs8_seed0/log.txt").read_text()
    assert "no_such_model" in log
    assert "failed" in capsys.readouterr().err


def test_runs_as_ray_tasks(tmp_path, tiny_bart, tiny_qa, ray_local):
    from train.sweep import Executor, sweep

    out = tmp_path / "sweep"
    settings = {
        "max_steps": 10,
        "eval_every": 10,
        "warmup_steps": 5,
        "num_beams": 1,
        "max_gen_length": 4,
    }
    executor = Executor("auto", gpus_per_run=0, retries=0, log=lambda *_: None)
    summary = sweep(
        [f"tiny={tiny_bart}", f"broken={tmp_path / 'missing'}"],
        ["zsre"],
        {"zsre": tiny_qa},
        out,
        [1e-3],
        [8],
        [0],
        "grid",
        settings,
        executor,
    )
    assert summary["ran"] == 2
    assert summary["failed"] == [str(out / "broken/zsre/lr0.001_bs8_seed0")]
    assert (out / "tiny/zsre/lr0.001_bs8_seed0/metrics.json").exists()


@pytest.mark.slow
def test_sweep_finishes_when_a_node_running_a_run_dies(tmp_path, tiny_bart, tiny_qa):
    """A Ray cluster (head without CPUs, three 1-CPU nodes): the node running a
    fine-tuning run is removed mid-run; Ray runs it again on a surviving node
    and the sweep ends with every run finished, none failed."""
    import os
    import subprocess
    import sys
    import time

    from ray.cluster_utils import Cluster

    from tests.helpers import ROOT
    from tests.preprocess.test_node_loss import busy_nodes

    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    nodes = [c.add_node(num_cpus=1) for _ in range(3)]
    c.wait_for_nodes()
    try:
        out = tmp_path / "sweep"
        args = [
            sys.executable,
            "-m",
            "maskpt",
            "sweep",
            "--checkpoints",
            f"tiny={tiny_bart}",
            "--tasks",
            "zsre",
            "--data",
            f"zsre={tiny_qa}",
            "--out",
            str(out),
            "--lrs",
            "1e-3",
            "--batch-sizes",
            "8",
            "--seeds",
            "0",
            "1",
            "--search",
            "grid",
            "--address",
            c.address,
            "--gpus-per-run",
            "0",
            "--retries",
            "0",
            "finetune.max_steps=2500",
            "finetune.eval_every=2500",
            "finetune.num_beams=1",
            "finetune.max_gen_length=4",
            "finetune.report_to=[none]",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(out.rglob("log.jsonl")):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.2)
        busy = busy_nodes(c.address, nodes)
        assert busy, "no run was running"
        c.remove_node(busy[0])
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        summary = json.loads((out / "sweep.json").read_text())
        assert summary["failed"] == [] and len(list(out.rglob("metrics.json"))) == 2
        starts = [p.read_text().count("Loading weights: 100%") for p in out.rglob("log.txt")]
        assert sorted(starts) == [1, 2]  # the run on the lost node ran again, elsewhere
    finally:
        c.shutdown()


def test_runs_asking_for_gpus_the_cluster_lacks_are_warned_about(ray_local):
    """Ray leaves an infeasible task waiting without a word to the driver; the
    sweep says so before it submits anything."""
    from train.sweep import Executor

    said = []
    Executor("auto", gpus_per_run=1, retries=0, log=said.append)
    assert len(said) == 1 and "--gpus-per-run 0" in said[0] and "has 0 now" in said[0]
    said.clear()
    Executor("auto", gpus_per_run=0, retries=0, log=said.append)
    assert said == []

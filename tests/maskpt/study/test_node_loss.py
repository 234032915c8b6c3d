"""A Ray node lost in the middle of a study's pre-training stage: Ray restarts
the stage on another node, the run resumes from its last checkpoint, and the
study completes with the parameters of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT
from tests.maskpt.study.tiny import tiny_study
from tests.preprocess.test_node_loss import busy_nodes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    nodes = [c.add_node(num_cpus=1) for _ in range(3)]
    c.wait_for_nodes()
    yield c, nodes
    c.shutdown()


def test_pretraining_stage_survives_a_lost_node(
    cluster, tmp_path, tokenizer_dir, tiny_bart, tiny_qa
):
    c, nodes = cluster
    config = tiny_study(
        tmp_path,
        tokenizer_dir,
        tiny_bart,
        tiny_qa,
        rows=[{"name": "orig", "policy": "orig_v1"}],
        baseline=False,
        # 540 steps after the first checkpoint (several seconds at this model's 10-20 ms a
        # step): time to find and remove the node before the run ends (36 were not, once
        # the step got faster)
        pretrain_set={
            "total_steps": 600,
            "save_every": 60,
            "log_every": 60,
            "debug_records": True,
        },
        resources={"pretrain_cpus": 1, "retries": 2},
    )
    out = tmp_path / "out"
    run = out / "pretrain" / "orig" / "seed0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskpt", "study", "--config", str(config), "--address", c.address],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # the first checkpoint: past DeepSpeed's start (and its one-time JIT build, which a
    # kill would leave locked for the next start on this machine)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (run / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.1)
    assert (run / "checkpoints" / "latest").exists(), "no checkpoint within 10 minutes"
    assert not (run / "hf").exists(), "the run finished before a node could be lost"
    victim = busy_nodes(c.address, nodes)  # the node running the pre-training stage
    assert len(victim) == 1
    c.remove_node(victim[0])
    printed, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, printed[-3000:]
    log = (out / "_study" / "pretrain" / "orig" / "seed0" / "log.txt").read_text()
    attempts = [x for x in log.splitlines() if x.startswith("=== ")]
    assert len(attempts) == 2 and attempts[1].endswith("--resume"), attempts
    # the same run, uninterrupted
    ref = tmp_path / "ref"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "train.pretrain",
            "--config",
            str(out / "_study" / "pretrain" / "orig" / "seed0" / "config.yaml"),
            f"output_dir={ref}",
        ],
        # the Ray task's threads (Ray sets OMP_NUM_THREADS to its num_cpus unless the
        # nodes' environment has it): the same float reduction order, so the same bits
        env={**env, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
        check=True,
        capture_output=True,
    )
    losses = lambda d: [json.loads(x)["loss"] for x in (d / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert losses(run) == pytest.approx(losses(ref), rel=1e-5) and len(losses(ref)) == 10
    sha = "param_sha256.rank0.txt"
    assert (run / sha).read_text() == (ref / sha).read_text()
    assert (out / "report" / "report.json").exists()

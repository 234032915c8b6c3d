"""ray_local.yaml for real: `ray up` over SSH (Ray's `local` provider) of a
head on 127.0.0.1 and a worker the head's autoscaler brings up over SSH at
127.0.0.2 (this machine again), a preprocessing run, a sweep and a tiny
study submitted the README's way (`ray exec ... "maskpt ... --address
auto"`), `ray down`; the cluster's output equals local runs', and the
study's stages ran on both nodes. (A node lost during a study is
tests/maskpt/study/test_node_loss.py's, with Ray's cluster_utils.) Needs
sshd and a key (scripts/local_sshd.sh, which .ci/run runs and then sets
MASKPT_SSH_KEY); skipped without them.

`ray stop` in the start commands stops every Ray on the machine, so the
conftest runs tests marked `ray_up` last and this one stops the session's
shared Ray first."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from maskpt.core.resources import bundled_corpus
from tests.maskpt.study.tiny import tiny_study

ROOT = Path(__file__).resolve().parents[1]
KEY = os.environ.get("MASKPT_SSH_KEY", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ray_up,
    pytest.mark.skipif(not KEY, reason="needs MASKPT_SSH_KEY (scripts/local_sshd.sh)"),
]

SWEEP_QUICK = [
    "finetune.max_steps=10",
    "finetune.eval_every=10",
    "finetune.warmup_steps=5",
    "finetune.num_beams=1",
    "finetune.max_gen_length=4",
    "finetune.report_to=[none]",
]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "index.json"
    }


def _maskpt(*args: str) -> list[str]:
    return [sys.executable, "-m", "maskpt", *args]


def _metrics(path: Path) -> dict:
    strip = ("runtime", "seconds", "_per_second", "_per_s")  # timings
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.endswith(strip)}


def test_ray_up_preprocess_sweep_and_study_then_ray_down(
    tmp_path, tokenizer_dir, tiny_bart, tiny_qa
):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    preprocess = [
        "preprocess",
        "--input",
        str(bundled_corpus()),
        "--policy",
        "orig_v1",
        "--tokenizer",
        tokenizer_dir,
        "--quiet",
        "docs_per_unit=8",
    ]
    sweep = [
        "sweep",
        "--checkpoints",
        f"tiny={tiny_bart}",
        "--tasks",
        "zsre",
        "--data",
        f"zsre={tiny_qa}",
        "--lrs",
        "1e-3",
        "--batch-sizes",
        "8",
        "--seeds",
        "0",
        "--search",
        "grid",
        "--gpus-per-run",
        "0",
        *SWEEP_QUICK,
    ]
    study = tiny_study(tmp_path / "study", tokenizer_dir, tiny_bart, tiny_qa)
    cluster_study, local_study = tmp_path / "cluster_study", tmp_path / "local_study"
    on_cluster = [
        shlex.join(
            [
                "maskpt",
                *preprocess,
                "--address",
                "auto",
                "--output",
                str(tmp_path / "cluster_shards"),
            ]
        ),
        shlex.join(
            ["maskpt", *sweep, "--address", "auto", "--out", str(tmp_path / "cluster_sweep")]
        ),
        shlex.join(
            ["maskpt", "study", "--config", str(study), "--address", "auto", f"out={cluster_study}"]
        ),
    ]
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts/ray_local_cluster.py"),
                "--work",
                str(tmp_path / "cluster"),
                "--key",
                KEY,
                "--workers",
                "1",
                *on_cluster,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:  # a killed script leaves its cluster's Ray running: stop it (ray down's own job)
        ray_cli = str(Path(sys.executable).parent / "ray")
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
    log = done.stdout[-6000:] + done.stderr[-6000:]
    assert done.returncode == 0, log
    assert "ray exec" in done.stdout and "ray down" in done.stdout

    subprocess.run(
        _maskpt(*preprocess, "--no-ray", "--output", str(tmp_path / "local_shards")),
        check=True,
        timeout=300,
    )
    subprocess.run(_maskpt(*sweep, "--out", str(tmp_path / "local_sweep")), check=True, timeout=600)

    cluster, local = _files(tmp_path / "cluster_shards"), _files(tmp_path / "local_shards")
    assert any(k.endswith(".arrow") for k in cluster)
    assert cluster == local
    run = "tiny/zsre/lr0.001_bs8_seed0"
    for name in ("predictions.test.jsonl", "metrics.json"):
        a = tmp_path / "cluster_sweep" / run / name
        b = tmp_path / "local_sweep" / run / name
        if name == "metrics.json":
            assert _metrics(a) == _metrics(b)
        else:
            assert a.read_bytes() == b.read_bytes()
    summary = json.loads((tmp_path / "cluster_sweep/sweep.json").read_text())
    assert summary["ran"] == 1 and summary["failed"] == []

    # the study: every stage done on the cluster, with the models and results of a run
    # without Ray (its stages' threads as the cluster's 1-CPU tasks had them)
    status = (cluster_study / "_study" / "status.md").read_text()
    assert "8 done of 8 stages" in status, status
    assert "nodes joined: " in done.stdout
    nodes = {
        json.loads(p.read_text())["node"] for p in (cluster_study / "_study").rglob("done.json")
    }
    assert "127.0.0.2" in nodes and len(nodes) == 2, nodes  # the worker and the head
    subprocess.run(
        _maskpt("study", "--config", str(study), "--no-ray", f"out={local_study}"),
        check=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    metrics = sorted(p.relative_to(cluster_study) for p in cluster_study.rglob("metrics.json"))
    assert len(metrics) == 3  # none, orig, rand on zsre
    for m in metrics:
        a, b = _metrics(cluster_study / m), _metrics(local_study / m)
        assert a.pop("model").replace(str(cluster_study), str(local_study)) == b.pop("model")
        assert a == b, m
    for row in ("orig", "rand"):
        model = Path("pretrain", row, "seed0", "hf", "model.safetensors")
        assert (cluster_study / model).read_bytes() == (local_study / model).read_bytes()

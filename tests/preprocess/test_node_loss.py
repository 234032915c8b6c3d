"""A Ray cluster that loses a node in the middle of `maskpt preprocess`: the
run finishes by itself (the lost node's actor restarts on a surviving node
and its unit is retried) and its shards are byte-identical to a clean run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, synthetic_texts, write_jsonl

SLOW_DRIVER = """
import sys, time
from policies.rand import RandPolicy, RandConfig
from maskpt.core.tokenizer import load_tokenizer, TokenizerInfo
from preprocess.config import PreprocessConfig
from preprocess.pipeline import run_preprocess

class SlowRand(RandPolicy):
    name = "rand_v1"
    def annotate(self, segments):
        time.sleep(0.5)
        return super().annotate(segments)

tok, inp, out, address = sys.argv[1:5]
cfg = PreprocessConfig(inputs=(inp,), output=out, policy="rand_v1", tokenizer=tok,
                       docs_per_unit=3, shard_size=9, workers=2, max_in_flight=1, address=address)
pol = SlowRand(RandConfig(), TokenizerInfo.from_tokenizer(load_tokenizer(tok)))
run_preprocess(cfg, policy=pol, progress=False)
"""

PROBE = """
import json, sys, ray
from ray._private import state
ray.init(address=sys.argv[1], log_to_driver=False)
print(json.dumps({n: r.get("CPU", 0.0) for n, r in state.available_resources_per_node().items()}))
"""


def busy_nodes(address: str, candidates) -> list:
    """The candidate nodes whose CPU is taken (by a worker actor or task)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, address],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    free = json.loads(out.stdout.strip().splitlines()[-1])
    return [n for n in candidates if free.get(n.node_id, 1.0) < 1.0]


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    nodes = [c.add_node(num_cpus=1) for _ in range(3)]  # 2 actors and one spare node
    c.wait_for_nodes()
    yield c, nodes
    c.shutdown()


@pytest.mark.slow
def test_preprocess_finishes_identically_when_a_worker_node_dies(cluster, tmp_path, tokenizer_dir):
    from preprocess.config import PreprocessConfig
    from preprocess.inspection import verify
    from preprocess.pipeline import run_preprocess

    c, nodes = cluster
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(45, seed=12))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_DRIVER, tokenizer_dir, str(inp), str(out), c.address],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list((out / "_progress").glob("*.done"))) < 3:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    victim = busy_nodes(c.address, nodes)[0]  # a node running a worker actor
    c.remove_node(victim)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]  # no "rerun the same command": it went on
    assert verify(out) == []
    ref = PreprocessConfig(
        inputs=(str(inp),),
        output=str(tmp_path / "ref"),
        policy="rand_v1",
        tokenizer=tokenizer_dir,
        docs_per_unit=3,
        shard_size=9,
    )
    run_preprocess(ref, progress=False, use_ray=False)
    for sub in ("arrow",):
        a = sorted((out / sub).iterdir())
        b = sorted((tmp_path / "ref" / sub).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))

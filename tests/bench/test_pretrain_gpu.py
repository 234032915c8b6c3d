"""bench/pretrain_gpu.py rehearsed on CPU (the GPU check runs it first, on a
machine that is lent for minutes): every row prints, the recipe's model has
the paper config's padded vocabulary, and the profile follows each row."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_rehearsal_prints_every_row_with_the_padded_vocabulary():
    from bench.pretrain_gpu import paper_pad_vocab

    assert paper_pad_vocab() == 64
    env = dict(os.environ, MASTER_PORT=str(_free_port()), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "bench.pretrain_gpu", "--rehearse", "--micro-batch", "2"]
    cmd += ["--accum", "2", "--steps", "4", "--warmup", "2", "--zero-stages", "0,2"]
    cmd += ["--profile", "1"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    timed = [x for x in lines if "tokens/s" in x]
    assert [x.split(":")[0] for x in timed] == [
        "plain PyTorch loop (eager)",
        "recipe (DeepSpeed ZeRO-0, vocabulary padded to 1,024, eager)",
        "recipe (DeepSpeed ZeRO-2, vocabulary padded to 1,024, eager)",
    ]
    assert sum(x.startswith("profile of ") for x in lines) == 3
    best = [x for x in lines if "the best plain loop" in x]
    assert len(best) == 2 and all("(goal >= 0.95x)" in x for x in best)

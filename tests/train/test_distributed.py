"""Distributed helpers in one process: batch arithmetic, reductions, the
non-finite stop."""

import pytest
import torch

from maskpt.core.config import ConfigError
from train.distributed import (
    NonFiniteLoss,
    all_reduce,
    check_finite,
    seed_step,
    split_batch,
    zero_config,
)


def test_split_batch():
    assert split_batch(2048, 64, 8) == 4
    assert split_batch(2048, 32, 1) == 64
    with pytest.raises(ConfigError, match="2048 is not a multiple of 192"):
        split_batch(2048, 64, 3)


def test_single_process_reductions_and_the_finite_check():
    assert all_reduce([1.5, 2.0]) == [1.5, 2.0]
    check_finite(torch.tensor(0.5), "at step 1")
    with pytest.raises(NonFiniteLoss, match="non-finite loss at step 7 on some rank"):
        check_finite(torch.tensor(float("inf")), "at step 7")


def test_seed_step_draws_what_torch_manual_seed_draws():
    drop = torch.nn.Dropout(0.5)
    x = torch.ones(1000)
    torch.manual_seed(123)
    expected = drop(x)
    torch.manual_seed(7)  # another state in between
    seed_step(123, torch.device("cpu"))
    assert torch.equal(drop(x), expected)
    seed_step(124, torch.device("cpu"))
    assert not torch.equal(drop(x), expected)


def test_zero_config_has_the_batch_arithmetic():
    c = zero_config(64, 8, 4, 1.0, 2, False)
    assert c["train_batch_size"] == 64 and c["gradient_accumulation_steps"] == 4
    assert c["zero_optimization"] == {"stage": 2} and c["bf16"] == {"enabled": False}


def test_a_stale_jit_build_lock_is_named_instead_of_waited_on(tmp_path, monkeypatch):
    """A lock left by a killed JIT build (no write in its folder for 5 minutes)
    is refused with the file to delete; a fresh one (a build under way) is not."""
    import os
    import time

    from maskpt.core.errors import UserError
    from train.distributed import check_jit_locks

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    op = tmp_path / "py311_cpu" / "deepspeed_shm_comm"
    op.mkdir(parents=True)
    (op / "build.ninja").write_text("rule cxx\n")
    (op / "lock").write_text("")
    check_jit_locks()  # a build under way: its files are fresh
    old = time.time() - 3600
    for f in op.iterdir():
        os.utime(f, (old, old))
    with pytest.raises(UserError, match=r"deepspeed_shm_comm/lock is left by a JIT build .*\(rm "):
        check_jit_locks()

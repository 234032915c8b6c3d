"""Distributed plumbing both training recipes share: the launcher's
environment, DeepSpeed set-up and config, batch arithmetic, small
all-reduces, and the all-ranks stop on a non-finite loss."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path

from maskpt.core.config import ConfigError
from maskpt.core.errors import UserError


class NonFiniteLoss(UserError, FloatingPointError):
    """A NaN or infinite loss on some rank: every rank stops, saving nothing
    (one line, exit 2: most often a learning rate that diverges)."""


def dist_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from the launcher's environment; a
    plain `python` run is rank 0 of 1. Reads only: nothing is set before a
    job is sure to start (`single_process_env` does that)."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1))


def single_process_env() -> None:
    """The variables torch.distributed needs, for a run without a launcher
    (rank 0 of 1); a launcher's own values are kept."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))


def seed_step(seed: int, device) -> None:
    """Seed the generators a training step draws from (dropout): the CPU's and
    the step's accelerator's, as `torch.manual_seed` seeds them, without its
    work for every other device kind PyTorch knows (for each one not yet
    initialised it records the caller's stack: ~0.6 ms a call from deep in the
    recipe, at every micro-batch)."""
    import torch

    torch.default_generator.manual_seed(seed)
    if device.type != "cpu":
        torch.get_device_module(device.type).manual_seed(seed)


def launched_world() -> int:
    """The world size the launcher set (1 for a plain process)."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def split_batch(
    global_batch: int, micro_batch: int, world: int, names=("global_batch", "micro_batch")
) -> int:
    """Gradient-accumulation steps so that micro x world x accumulation = global."""

    per_step = micro_batch * world
    if global_batch % per_step:
        raise ConfigError(
            f"{names[0]} {global_batch} cannot be split into {names[1]} {micro_batch} x world "
            f"size {world} x gradient accumulation: {global_batch} is not a multiple of "
            f"{per_step}; change {names[1]} or {names[0]}"
        )
    return global_batch // per_step


def zero_config(
    global_batch: int, micro_batch: int, accum: int, grad_clip: float, zero_stage: int, bf16: bool
) -> dict:
    """The DeepSpeed config the pre-training recipe computes (optimizer and
    schedule are passed to `deepspeed.initialize`, not configured here)."""
    return {
        "train_batch_size": global_batch,
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": grad_clip,
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }


STALE_LOCK_S = 300
"""A JIT-build lock whose folder saw no write for this long has lost its builder."""


def stale_jit_locks() -> list:
    """Lock files left under torch's extensions cache by a JIT build that was
    killed (PyTorch's file baton never expires: every later build of that op,
    such as DeepSpeed's shm op at each CPU start, waits on it forever)."""

    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()  # as torch does
    now, stale = time.time(), []
    for lock in Path(root).glob("*/*/lock"):
        newest = max(p.stat().st_mtime for p in lock.parent.iterdir())
        if now - newest > STALE_LOCK_S:
            stale.append(lock)
    return stale


def check_jit_locks() -> None:
    """Refuse to start on a stale JIT-build lock, naming the file to delete."""
    stale = stale_jit_locks()
    if stale:
        raise UserError(
            f"{stale[0]} is left by a JIT build that was killed mid-way (no write in its folder "
            f"for {STALE_LOCK_S // 60} minutes); DeepSpeed would wait on it forever: delete it "
            f"(rm {' '.join(map(str, stale))}) and rerun"
        )


def name_cpu_accelerator() -> None:
    """Tell DeepSpeed it runs on CPU when there is no GPU (`DS_ACCELERATOR`,
    unless set), before it is imported: its guess warns on every start that
    it "was unable to detect" a GPU."""

    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def init_deepspeed(precision: str) -> bool:
    """Distributed init from the launcher's environment (NCCL on GPU, gloo on
    CPU); returns whether to train in bf16 (`auto` = on GPU)."""

    import torch

    name_cpu_accelerator()
    import deepspeed

    check_jit_locks()
    single_process_env()
    _, local_rank, _ = dist_env()
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    said = io.StringIO()  # on CPU it prints "... shm_comm_op built successfully" at every start
    with contextlib.redirect_stdout(said):
        deepspeed.init_distributed(dist_backend="nccl" if use_cuda else "gloo", verbose=False)
    sys.stdout.writelines(
        line
        for line in said.getvalue().splitlines(keepends=True)
        if not line.rstrip().endswith("built successfully")
    )
    return precision == "bf16" or (precision == "auto" and use_cuda)


def finish_distributed() -> None:
    """Barrier, then tear the process group down (a rank can abort at exit otherwise)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce(values, op: str = "sum") -> list[float]:
    """Sum (or min) a few scalars over all ranks and bring them to the host: a
    list (put on the GPU under NCCL, which cannot reduce CPU tensors) or a 1-d
    tensor already on the rank's device. In one process only the copy."""
    import torch
    import torch.distributed as dist

    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return values.tolist() if torch.is_tensor(values) else list(values)
    if not torch.is_tensor(values):
        device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
        values = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MIN)
    return values.tolist()


def check_finite(loss, what: str) -> None:
    """Raise `NonFiniteLoss` on every rank when the loss of any rank is NaN or
    infinite; `what` says where (step, micro-step, examples) in the message."""
    import torch

    finite = float(torch.isfinite(loss.detach()).all().item())
    if all_reduce([finite], op="min")[0] < 1:
        rank = int(os.environ.get("RANK") or 0)
        raise NonFiniteLoss(
            f"non-finite loss {what} on some rank (rank {rank}: loss {loss.item()}); "
            "stopping without saving"
        )


def full_parameters(engine):
    """A context in which `engine.module`'s parameters are whole: under ZeRO-3
    every rank must enter it (a collective gather); otherwise it does nothing."""

    if engine.zero_optimization_stage() != 3:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None)

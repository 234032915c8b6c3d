"""Where a training step's time goes: a few steps under torch.profiler, the
device kernels (or, on CPU, the operators) summed by kind, and how busy the
device was over the wall time.

    from bench.kernel_profile import profile_steps
    print(profile_steps(step, n=4, cuda=True, label="recipe"))

Kinds are read from kernel and operator names (cuBLAS/CUTLASS GEMMs, flash
or memory-efficient attention, Triton kernels that torch.compile fused, ...);
a kernel whose name fits none is counted as "other". On a GPU the kernels'
summed time over the wall time says how long the device waited for the
host (launch gaps, syncs, Python); kernels on several streams could overlap,
which a single-GPU step without communication does not do.
"""

from __future__ import annotations

import time
from collections import defaultdict

KINDS = (  # first match wins: Triton names carry the op names they fused
    ("compiled (Triton / C++)", ("triton", "compiledfxgraph", "cpp_fused")),
    ("communication", ("nccl", "gloo", "all_reduce", "allreduce")),
    ("attention", ("flash", "fmha", "attention", "scaled_dot_product")),
    (
        "GEMM",
        ("gemm", "cutlass", "xmma", "nvjet", "cublas", "aten::mm", "aten::addmm", "aten::bmm"),
    ),
    ("softmax / cross-entropy", ("softmax", "nll", "cross_entropy")),
    ("layer norm", ("layer_norm", "layernorm")),
    ("dropout", ("dropout", "bernoulli", "philox")),
    ("optimizer", ("adam", "multi_tensor", "foreach", "lerp", "addcdiv", "addcmul")),
    ("embedding / indexing", ("embedding", "index", "scatter", "gather")),
    ("copy / cast / fill", ("copy", "memcpy", "memset", "to_copy", "fill", "cast")),
    ("reduction", ("reduce", "sum", "norm", "mean")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "add", "mul", "gelu", "div")),
)


def kind(name: str) -> str:
    low = name.lower()
    for label, keys in KINDS:
        if any(k in low for k in keys):
            return label
    return "other"


def _device_kernels(prof) -> list[tuple[str, float]]:
    """(name, microseconds) of each device kernel the profiler saw."""
    from torch.autograd import DeviceType

    return [
        (e.name, float(e.device_time_total))
        for e in prof.events()
        if e.device_type != DeviceType.CPU and not e.is_async
    ]


def _cpu_ops(prof) -> list[tuple[str, float]]:
    """(name, self microseconds) of each CPU operator (the rehearsal's view)."""
    return [(e.key, float(e.self_cpu_time_total)) for e in prof.key_averages()]


def profile_steps(step, n: int, cuda: bool, label: str, top: int = 12) -> str:
    """Run `step` n times under the profiler; a text report of the time by
    kind, the top kernels (operators on CPU) and the device's busy share."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync()
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        wall_us = (time.perf_counter() - t0) * 1e6
    rows = _device_kernels(prof) if cuda else _cpu_ops(prof)
    return report(rows, wall_us, n, label, "kernels" if cuda else "CPU operators (self time)", top)


def report(rows, wall_us: float, n: int, label: str, what: str, top: int = 12) -> str:
    """The text of `profile_steps` from (name, microseconds) rows."""
    total = sum(us for _, us in rows) or 1.0
    by_kind: dict[str, float] = defaultdict(float)
    by_name: dict[str, float] = defaultdict(float)
    for name, us in rows:
        by_kind[kind(name)] += us
        by_name[name] += us
    lines = [
        f"profile of {label}: {n} steps, wall {wall_us / n / 1e3:.2f} ms per step, {what} "
        f"{total / n / 1e3:.2f} ms per step ({total / wall_us:.0%} of the wall time)"
    ]
    for k, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {k:26s} {us / n / 1e3:9.2f} ms per step  {us / total:6.1%}")
    lines.append(f"  top {top} {what}:")
    for name, us in sorted(by_name.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {us / n / 1e3:9.2f} ms  {us / total:6.1%}  {name[:110]}")
    return "\n".join(lines)

"""`maskpt sweep`: the paper's fine-tuning protocol as separate jobs.

For every (checkpoint, task): search the learning rate at the first batch
size and seed, then the batch size at the best rate, then run the remaining
seeds at the best setting (`--search staged`, the paper's order); or run the
full grid x seeds (`--search grid`). Each run is `python -m train.finetune`
in its own process, writing its own folder

    OUT/<checkpoint>/<task>/lr<lr>_bs<bs>_seed<seed>/
        config.yaml  log.txt  log.jsonl  predictions.*.jsonl  metrics.json

On a Ray cluster (`--address auto`) each run is a Ray task holding
`--gpus-per-run` GPUs (OUT must then be on a filesystem every node sees);
locally the runs go one after another. A folder with
metrics.json is finished and skipped on rerun; a failed run is retried
`--retries` times and then reported (OUT/sweep.json and the exit status),
never dropped.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import ConfigError
from maskpt.core.errors import exit_on_user_error
from train.finetune import FinetuneConfig
from train.tasks import TASKS


@dataclass(frozen=True)
class SweepConfig:
    checkpoints: tuple[str, ...] = ()
    """HF model folders or hub names, each `PATH` or `NAME=PATH` (the report's row names)."""
    tasks: tuple[str, ...] = ()
    """Task names (nq tqa wq ay2 zsre wow ropes wiqa quartz, or synth, the demo's)."""
    data: tuple[str, ...] = ()
    """`TASK=DIR` per task, or one DIR holding a folder per task."""
    out: str = ""
    """Sweep folder: one subfolder per run, sweep.json."""
    lrs: tuple[float, ...] = (5e-6, 1e-5, 2e-5, 3e-5)
    """Learning rates searched (the paper's)."""
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256)
    """Batch sizes searched (the paper's)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds run at the chosen setting."""
    search: Literal["staged", "grid"] = "staged"
    """staged: lr, then batch size, then seeds (the paper); grid: everything."""
    finetune: dict[str, Any] = field(default_factory=dict)
    """FinetuneConfig fields for every run, e.g. finetune.max_steps=1000."""
    address: str | None = None
    """Ray cluster address (e.g. auto); none: the runs go one after another here."""
    gpus_per_run: float = 1.0
    """GPUs per Ray task."""
    retries: int = 1
    """Retries of a failed run."""

    def __post_init__(self) -> None:
        for key in ("checkpoints", "tasks", "data", "out"):
            if not getattr(self, key):
                raise ValueError(f"{key}: required (see --help)")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"tasks: unknown {unknown}; tasks: {', '.join(TASKS)}")
        known = set(FinetuneConfig.__dataclass_fields__)
        bad = sorted(k for k in self.finetune if k not in known)
        if bad:
            raise ValueError(f"finetune.{bad[0]}: not a FinetuneConfig field")
        if self.retries < 0 or not (self.lrs and self.batch_sizes and self.seeds):
            raise ValueError("retries must be >= 0 and lrs, batch_sizes, seeds non-empty")


@dataclass(frozen=True)
class Run:
    checkpoint: str  # display name
    model: str
    task: str
    lr: float
    batch_size: int
    seed: int
    folder: Path
    settings: dict = field(default_factory=dict, hash=False, compare=False)

    def config(self) -> dict:
        return {
            **self.settings,
            "task": self.task,
            "model": self.model,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "output_dir": str(self.folder),
        }

    @property
    def done(self) -> bool:
        return (self.folder / "metrics.json").exists()

    def dev(self) -> float:
        return json.loads((self.folder / "metrics.json").read_text())["dev"]


def die_with_parent() -> None:
    """In the child: get SIGKILL when the parent dies (Linux), so a run whose
    Ray worker or node is gone does not go on writing beside its retry."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def execute(folder: str) -> tuple[bool, float, str]:
    """Run one fine-tuning job in a fresh process; (ok, seconds, log tail).
    A run already finished (by an earlier attempt) counts as done."""
    folder_p = Path(folder)
    if (folder_p / "metrics.json").exists():
        return True, 0.0, "finished already"
    t0 = time.perf_counter()
    with (folder_p / "log.txt").open("ab") as log:
        rc = subprocess.call(
            [sys.executable, "-m", "train.finetune", "--config", str(folder_p / "config.yaml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    tail = (folder_p / "log.txt").read_text(errors="replace")[-2000:]
    ok = rc == 0 and (folder_p / "metrics.json").exists()
    return ok, time.perf_counter() - t0, tail


class Executor:
    """Runs a list of runs to completion (with retries): locally in order,
    or as Ray tasks in parallel."""

    def __init__(self, address: str | None, gpus_per_run: float, retries: int, log=print):
        self.address, self.retries, self.log = address, retries, log
        self.failed: dict[str, str] = {}
        self.ran = self.skipped = 0
        self._remote: Callable | None = None
        if address:
            import ray

            if not ray.is_initialized():
                ray.init(address=address, log_to_driver=False)
            gpus = ray.cluster_resources().get("GPU", 0)
            if gpus_per_run > 0 and gpus < gpus_per_run:
                log(
                    f"warning: each run asks for {gpus_per_run:g} GPU and the cluster has "
                    f"{gpus:g} now: the runs wait until GPU nodes join (an autoscaler adds "
                    "them on demand); pass --gpus-per-run 0 to fine-tune on CPUs"
                )
            # a run whose node dies is retried on another (Ray retries system failures
            # only; a run that fails by itself is retried by this executor, --retries)
            self._remote = ray.remote(
                num_gpus=gpus_per_run, num_cpus=1, max_retries=3, retry_exceptions=False
            )(execute)

    def run_all(self, runs: list[Run]) -> None:
        todo = []
        for r in runs:
            if r.done:
                self.skipped += 1
                continue
            r.folder.mkdir(parents=True, exist_ok=True)
            (r.folder / "config.yaml").write_text(yaml.safe_dump(r.config(), sort_keys=True))
            todo.append(r)
        for attempt in range(self.retries + 1):
            if not todo:
                return
            results = self._launch(todo)
            again = []
            for r, (ok, secs, tail) in zip(todo, results, strict=True):
                self.ran += 1
                if ok:
                    self.failed.pop(str(r.folder), None)
                    self.log(f"done   {r.folder} ({secs:.0f}s)")
                else:
                    self.failed[str(r.folder)] = tail
                    self.log(f"FAILED {r.folder} (attempt {attempt + 1}); log: {r.folder}/log.txt")
                    again.append(r)
            todo = again

    def _launch(self, runs: list[Run]) -> list[tuple[bool, float, str]]:
        if self._remote is None:
            return [execute(str(r.folder)) for r in runs]
        import ray

        refs = [self._remote.remote(str(r.folder)) for r in runs]
        results = []
        for ref in refs:  # one by one: a lost worker fails its run, not the sweep
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as exc:
                results.append((False, 0.0, f"Ray task failed: {exc}"))
        return results


def _local(path: str) -> str:
    """Absolute path for local folders (jobs may run elsewhere); hub names as given."""
    return str(Path(path).resolve()) if Path(path).exists() else path


def _name(path: str) -> tuple[str, str]:
    """`NAME=PATH` or PATH (named after its folder; OUTPUT/hf -> OUTPUT)."""
    if "=" in path:
        name, _, p = path.partition("=")
        return name, _local(p)
    p = Path(path)
    return (p.parent.name if p.name == "hf" else p.name) or path, _local(path)


def _tag(lr: float, bs: int, seed: int) -> str:
    return f"lr{lr:g}_bs{bs}_seed{seed}"


def plan(checkpoint: tuple[str, str], task: str, out: Path, settings: dict) -> Callable:
    """A maker of the runs of one (checkpoint, task): make(lr, batch size, seed) -> Run."""
    name, model = checkpoint

    def make(lr, bs, seed) -> Run:
        return Run(
            name, model, task, lr, bs, seed, out / name / task / _tag(lr, bs, seed), settings
        )

    return make


def best_of(runs: list[Run]) -> Run | None:
    finished = [r for r in runs if r.done]
    return max(finished, key=lambda r: r.dev(), default=None)


def sweep(
    checkpoints: list[str],
    tasks: list[str],
    data: dict[str, str],
    out: Path,
    lrs: list[float],
    batch_sizes: list[int],
    seeds: list[int],
    search: str = "staged",
    settings: dict | None = None,
    executor: Executor | None = None,
) -> dict:
    """Run the protocol for every checkpoint x task; returns the summary also
    written to OUT/sweep.json."""
    executor = executor or Executor(None, 0, 1)
    settings = dict(settings or {})
    out = Path(out).resolve()
    makers = []
    for ck in checkpoints:
        for task in tasks:
            if task not in data:
                raise ConfigError(f"no data folder for task {task!r}: pass --data {task}=DIR")
            makers.append(plan(_name(ck), task, out, {**settings, "data_dir": _local(data[task])}))
    chosen: dict = {}
    if search == "grid":
        executor.run_all(
            [m(lr, bs, s) for m in makers for lr in lrs for bs in batch_sizes for s in seeds]
        )
    else:
        stage1 = {m: [m(lr, batch_sizes[0], seeds[0]) for lr in lrs] for m in makers}
        executor.run_all([r for rs in stage1.values() for r in rs])
        best_lr = {m: best_of(rs) for m, rs in stage1.items()}
        stage2 = {m: [m(b.lr, bs, seeds[0]) for bs in batch_sizes] for m, b in best_lr.items() if b}
        executor.run_all([r for rs in stage2.values() for r in rs])
        best = {m: best_of(rs) for m, rs in stage2.items()}
        executor.run_all([m(b.lr, b.batch_size, s) for m, b in best.items() if b for s in seeds])
        for b in best.values():
            if b:
                chosen[f"{b.checkpoint}/{b.task}"] = {"lr": b.lr, "batch_size": b.batch_size}
    summary = {
        "search": search,
        "ran": executor.ran,
        "skipped_finished": executor.skipped,
        "failed": sorted(executor.failed),
        "chosen": chosen,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def data_dirs(specs, tasks) -> dict[str, str]:
    """`TASK=DIR` entries, or one DIR holding a folder per task."""
    if len(specs) == 1 and "=" not in specs[0]:
        return {t: str(Path(specs[0]) / t) for t in tasks}
    out = {}
    for spec in specs:
        task, sep, folder = spec.partition("=")
        if not sep:
            raise ConfigError(f"data {spec!r}: expected TASK=DIR")
        out[task] = folder
    return out


EXAMPLE = """example:
  maskpt sweep --checkpoints orig=runs/orig/hf ssm=runs/ssm/hf --tasks nq wq \\
      --data nq=data/nq wq=data/wq --out runs/ft --address auto finetune.max_epochs=20
"""


def config_args():
    return ConfigArgs(SweepConfig, "maskpt sweep", __doc__, EXAMPLE)


def main(argv=None) -> int:
    args = config_args()

    def run() -> int:
        for item in argv or ():
            key = item.split("=", 1)[0]
            if (
                "=" in item
                and key in FinetuneConfig.__dataclass_fields__
                and key not in (SweepConfig.__dataclass_fields__)
            ):
                raise ConfigError(
                    f"maskpt sweep: {key} is a fine-tuning setting: write finetune.{item}"
                )
        cfg, _ = args.parse(argv)
        executor = Executor(cfg.address, cfg.gpus_per_run, cfg.retries)
        summary = sweep(
            list(cfg.checkpoints),
            list(cfg.tasks),
            data_dirs(cfg.data, cfg.tasks),
            Path(cfg.out),
            list(cfg.lrs),
            list(cfg.batch_sizes),
            list(cfg.seeds),
            cfg.search,
            cfg.finetune,
            executor,
        )
        print(
            f"sweep: {summary['ran']} run(s) executed, {summary['skipped_finished']} already "
            f"finished, {len(summary['failed'])} failed; summary in {cfg.out}/sweep.json"
        )
        for f in summary["failed"]:
            print(f"  failed: {f} (see {f}/log.txt)", file=sys.stderr)
        return 1 if summary["failed"] else 0

    return exit_on_user_error("maskpt sweep", run)

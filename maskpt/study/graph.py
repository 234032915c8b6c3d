"""A study as a graph of stages, and each stage's state on disk.

A stage is one command line (an existing `maskpt` command or recipe) with
the config file it reads, the stages it needs, and the resources it holds.
Its state lives in `OUT/_study/<stage id>/`:

    config.yaml    the stage's config, written before it starts (if any)
    log.txt        the command's output, every attempt appended
    queued.json    {"since"}: handed to Ray, waiting for a node with its resources
    running.json   {"host", "node", "pid", "started"} while it runs
    done.json      {"host", "node", "started", "finished", "seconds"}: complete, skipped on rerun
    failed.json    {"error", "exit", "host", "node", "log", "finished"}: its last attempt failed

("node": the Ray node's address, when the stage ran as a Ray task.)
`OUT/_study/driver.json` is the study's own heartbeat: a `running.json`
under a driver that stopped beating is an interrupted stage, not a
running one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskpt.core.io import write_json_atomic, write_text_atomic

HEARTBEAT_S = 10.0
"""How often the study's driver rewrites driver.json."""


@dataclass(frozen=True)
class Stage:
    id: str
    """Unique, `/`-separated (`pretrain/ssm/seed0`): its folder under OUT/_study."""
    kind: str
    """policy, preprocess, pretrain, sweep or report."""
    argv: tuple[str, ...]
    """The command; a leading `maskpt` runs as `python -m maskpt`, and `{config}` is the
    path of the written config.yaml."""
    deps: tuple[str, ...] = ()
    """Stage ids that must be done first."""
    config: dict[str, Any] | None = None
    """Written to config.yaml before the command runs."""
    resume: tuple[str, str] | None = None
    """(path, flag): the flag is added when the path exists when the stage (re)starts,
    e.g. a pre-training run's latest checkpoint and `--resume`."""
    gpus: float = 0.0
    cpus: float = 1.0
    output: str = ""
    """What the stage makes (a folder), shown by status."""
    cost: dict[str, float] = field(default_factory=dict)
    """`gpu_hours` (and what they assume) for `--dry-run`; empty where nothing is measured."""


class Graph:
    def __init__(self, stages: list[Stage]):
        self.stages = {s.id: s for s in stages}
        if len(self.stages) != len(stages):
            seen: set[str] = set()
            twice = next(s.id for s in stages if s.id in seen or seen.add(s.id))
            raise ValueError(f"stage {twice} is defined twice")
        for s in stages:
            missing = [d for d in s.deps if d not in self.stages]
            if missing:
                raise ValueError(f"stage {s.id} needs {missing[0]}, which is not a stage")
        self.order = self._topological()

    def _topological(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(sid: str, path: tuple[str, ...]) -> None:
            if state.get(sid) == 2:
                return
            if state.get(sid) == 1:
                raise ValueError(f"stages depend on each other: {' -> '.join((*path, sid))}")
            state[sid] = 1
            for d in self.stages[sid].deps:
                visit(d, (*path, sid))
            state[sid] = 2
            order.append(sid)

        for sid in self.stages:
            visit(sid, ())
        return order

    def dependents(self, sid: str) -> set[str]:
        """Every stage that needs `sid`, directly or not."""
        out: set[str] = set()
        for other in self.order:
            if any(d == sid or d in out for d in self.stages[other].deps):
                out.add(other)
        return out


class Ledger:
    """The stages' state files under OUT/_study."""

    def __init__(self, out: str | Path):
        self.root = Path(out) / "_study"

    def folder(self, sid: str) -> Path:
        return self.root / sid

    def read(self, sid: str, name: str) -> dict | None:
        try:
            return json.loads((self.folder(sid) / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write(self, sid: str, name: str, data: dict) -> None:
        folder = self.folder(sid)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / name, data, indent=1)

    def remove(self, sid: str, name: str) -> None:
        (self.folder(sid) / name).unlink(missing_ok=True)

    def done(self, sid: str) -> bool:
        return (self.folder(sid) / "done.json").exists()

    def beat(self, study: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        beat = {"study": study, "host": os.uname().nodename, "pid": os.getpid(), "at": time.time()}
        write_text_atomic(self.root / "driver.json", json.dumps(beat) + "\n")

    def driver_alive(self) -> bool:
        try:
            at = json.loads((self.root / "driver.json").read_text())["at"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False
        return time.time() - at < 3 * HEARTBEAT_S

    def state(self, sid: str) -> str:
        """done, failed, running, interrupted, queued or not started."""
        if self.done(sid):
            return "done"
        if self.read(sid, "running.json") is not None:
            return "running" if self.driver_alive() else "interrupted"
        if self.read(sid, "failed.json") is not None:
            return "failed"
        if self.read(sid, "queued.json") is not None and self.driver_alive():
            return "queued"
        return "not started"

"""Running a study's stages: each in its own process, its state in the
ledger (`maskpt/study/graph.py`), one after another here (`--no-ray`) or as
Ray tasks holding the CPUs and GPUs the stage asks for, in parallel as the
cluster allows.

A stage that is done is skipped; a stage whose process fails is started
again (`resources.retries` times; a pre-training run then resumes from its
last checkpoint), then recorded as failed with its error's line, and the
stages that need it are left waiting while every other stage goes on. A
stage whose node is lost is retried by Ray on another node, from the same
files on shared storage. The study's exit status is 1 if any stage failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import ray
import yaml
from tqdm.auto import tqdm

from maskpt.core.errors import UserError
from maskpt.core.io import write_text_atomic
from maskpt.study.graph import HEARTBEAT_S, Graph, Ledger, Stage
from maskpt.study.status import log_progress, log_tail, render, stage_rows
from train.sweep import die_with_parent

_LEADS = {
    "maskpt": (sys.executable, "-m", "maskpt"),
    "python": (sys.executable,),
    "torchrun": (sys.executable, "-m", "torch.distributed.run"),
}


def command(stage: Stage, config: Path) -> list[str]:
    """The stage's command line as it runs now (resume flag included)."""
    head, *rest = stage.argv
    argv = [*_LEADS.get(head, (head,)), *rest]
    argv = [str(config) if a == "{config}" else a for a in argv]
    if stage.resume and Path(stage.resume[0]).exists():
        argv.append(stage.resume[1])
    return argv


def error_line(log: Path) -> str:
    """The line that says why a process failed: the last non-empty line of its
    log (a one-line user error, or a traceback's exception)."""
    tail = log_tail(log, 8192)
    if tail is None:
        return "no log"
    lines = [x.strip() for x in tail.splitlines() if x.strip()]
    return lines[-1][:300] if lines else "no output"


def where() -> dict[str, str]:
    """Where this process runs, for the ledger: the host name and, in a Ray task,
    the address of its Ray node."""
    here = {"host": socket.gethostname()}
    if ray.is_initialized():
        here["node"] = ray.util.get_node_ip_address()
    return here


def execute(stage: Stage, out: str, env: dict[str, str]) -> tuple[bool, float, str]:
    """Run one stage to its end on this node; (ok, seconds, error line). The
    ledger is written as it goes: running.json, then done.json or failed.json."""
    ledger = Ledger(out)
    folder = ledger.folder(stage.id)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    if stage.config is not None:
        head = f"# stage {stage.id} of a maskpt study: {' '.join(stage.argv)}\n"
        write_text_atomic(config, head + yaml.safe_dump(stage.config, sort_keys=False))
    argv = command(stage, config)
    here, started = where(), time.time()
    host = here["host"]
    ledger.remove(stage.id, "failed.json")
    ledger.remove(stage.id, "queued.json")
    ledger.write(stage.id, "running.json", {**here, "pid": os.getpid(), "started": started})
    log = folder / "log.txt"
    with log.open("ab") as f:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        # on a line of its own: an earlier attempt may have ended inside a progress bar's line
        f.write(f"\n=== {stamp} on {host}: {' '.join(argv)}\n".encode())
        f.flush()
        rc = subprocess.call(
            argv,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            preexec_fn=die_with_parent,
        )
    seconds = time.time() - started
    if rc == 0:
        done = {**here, "started": started, "finished": time.time(), "seconds": seconds}
        ledger.write(stage.id, "done.json", done)
        ledger.remove(stage.id, "running.json")
        return True, seconds, ""
    error = error_line(log)
    failed = {"error": error, "exit": rc, **here, "log": str(log), "finished": time.time()}
    ledger.write(stage.id, "failed.json", failed)
    ledger.remove(stage.id, "running.json")
    return False, seconds, error


class Heartbeat:
    """Rewrites OUT/_study/driver.json every HEARTBEAT_S while the study runs, and
    calls `also` (the progress display's refresh) as often."""

    def __init__(self, ledger: Ledger, name: str, also: Callable[[], None] = lambda: None):
        self.ledger, self.name, self.also = ledger, name, also
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.is_set():
            self.ledger.beat(self.name)
            self.also()
            self.stop.wait(HEARTBEAT_S)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        (self.ledger.root / "driver.json").unlink(missing_ok=True)


def write_plan(graph: Graph, out: str, name: str) -> None:
    """OUT/_study/plan.json: the stages, for `maskpt study status`."""
    stages = [dataclasses.asdict(graph.stages[s]) for s in graph.order]
    plan = {"study": name, "stages": stages}
    Path(out, "_study").mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(out, "_study", "plan.json"), json.dumps(plan, indent=1) + "\n")


class Runner:
    def __init__(
        self,
        graph: Graph,
        out: str,
        name: str,
        retries: int,
        log: Callable | None = None,
        progress: bool = False,
        limits: dict[str, int] | None = None,
    ):
        self.graph, self.out, self.name, self.retries = graph, out, name, retries
        self.limits = limits or {}  # stage kind -> how many may run at once on Ray
        self.ledger = Ledger(out)
        self.failed: dict[str, str] = {}
        self.ran: list[str] = []
        self.running: set[str] = set()
        self.skipped = [s for s in graph.order if self.ledger.done(s)]
        self.bar = tqdm(
            total=len(graph.order),
            initial=len(self.skipped),
            desc=f"study {name}",
            unit="stage",
            disable=not progress,
        )
        self.log = log or self.bar.write

    def started(self, sid: str) -> None:
        self.running.add(sid)
        self.log(f"start   {sid}")
        self.status()

    def status(self) -> None:
        """OUT/_study/status.md (the report's preface) and the bar's postfix."""
        write_text_atomic(Path(self.out, "_study", "status.md"), render(*stage_rows(self.out)))
        self.refresh()

    def refresh(self) -> None:
        """The bar's postfix: the running stages, each with its own progress bar's count
        (read from its log), then how many wait in Ray's queue."""
        started = sorted(s for s in self.running if self.ledger.state(s) != "queued")
        shown = [
            f"{sid} {log_progress(self.ledger.folder(sid) / 'log.txt')}".strip()
            for sid in started[:3]
        ]
        text = ", ".join(shown) + (" ..." if len(started) > 3 else "")
        queued = len(self.running) - len(started)
        self.bar.set_postfix_str(text + (f" (+{queued} queued)" if queued else ""))

    def ready(self, sid: str) -> bool:
        return all(self.ledger.done(d) for d in self.graph.stages[sid].deps)

    def room(self, sid: str) -> bool:
        """Whether the stage's kind is under its limit of stages running at once."""
        kind = self.graph.stages[sid].kind
        if kind not in self.limits:
            return True
        running = sum(1 for r in self.running if self.graph.stages[r].kind == kind)
        return running < self.limits[kind]

    def finished(self, sid: str, ok: bool, seconds: float, error: str, attempt: int) -> bool:
        """Log one attempt's end; True if the stage is settled (done or out of retries)."""
        self.running.discard(sid)
        if ok:
            self.ran.append(sid)
            self.bar.update(1)
            self.log(f"done    {sid} ({seconds:.0f} s)")
            return True
        last = attempt >= self.retries
        what = "FAILED " if last else "retry  "
        self.log(f"{what} {sid} (attempt {attempt + 1}): {error}")
        if last:
            self.failed[sid] = error
        return last

    def run_here(self, env: dict[str, str] | None = None) -> dict:
        """Every stage, one after another, in this process's node."""
        write_plan(self.graph, self.out, self.name)
        with Heartbeat(self.ledger, self.name, self.refresh):
            for sid in self.graph.order:
                if self.ledger.done(sid) or not self.ready(sid):
                    continue
                stage = self.graph.stages[sid]
                for attempt in range(self.retries + 1):
                    self.started(sid)
                    ok, seconds, error = execute(stage, self.out, env or {})
                    if self.finished(sid, ok, seconds, error, attempt):
                        break
        return self.summary()

    def check_fits(self, fixed: bool) -> None:
        """Each stage's CPUs and GPUs must fit on one node: an error on a Ray that no
        node will join (`fixed`, the embedded local one), else a warning (an
        autoscaler may add a larger node)."""
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        for sid in self.graph.order:
            s = self.graph.stages[sid]
            if any(r.get("CPU", 0) >= s.cpus and r.get("GPU", 0) >= s.gpus for r in nodes):
                continue
            have = ", ".join(f"{r.get('CPU', 0):g} CPUs {r.get('GPU', 0):g} GPUs" for r in nodes)
            message = (
                f"stage {sid} asks for {s.cpus:g} CPUs and {s.gpus:g} GPUs on one node; "
                f"this Ray's nodes have {have or 'nothing'} (the study config's `resources`)"
            )
            if fixed:
                raise UserError(message)
            self.log(f"warning: {message}: it waits until such a node joins")
            return

    def run_on_ray(self, fixed: bool = False) -> dict:
        """Every stage as a Ray task (the Ray this process has joined), each
        started as soon as the stages it needs are done."""
        self.check_fits(fixed)
        env = {"RAY_ADDRESS": ray.get_runtime_context().gcs_address}
        # a task whose node dies is retried by Ray on another (system failures only);
        # a stage whose process fails is retried below. SPREAD: a stage is a whole
        # process of minutes to hours, so stages go to different nodes where they
        # fit rather than filling the driver's node first (Ray's default)
        remote = ray.remote(max_retries=self.retries, retry_exceptions=False)(execute)
        write_plan(self.graph, self.out, self.name)
        for sid in self.graph.order:  # an earlier driver's queue is not this one's
            self.ledger.remove(sid, "queued.json")
        attempts: Counter[str] = Counter()
        pending: dict = {}  # task -> stage id; the stage ids are self.running
        with Heartbeat(self.ledger, self.name, self.refresh):
            while True:
                for sid in self.graph.order:
                    if sid in self.running or sid in self.failed or self.ledger.done(sid):
                        continue
                    if self.ready(sid) and self.room(sid):
                        s = self.graph.stages[sid]
                        ref = remote.options(
                            num_cpus=s.cpus, num_gpus=s.gpus, scheduling_strategy="SPREAD"
                        ).remote(s, self.out, env)
                        pending[ref] = sid
                        self.ledger.write(sid, "queued.json", {"since": time.time()})
                        self.started(sid)
                if not pending:
                    break
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    sid = pending.pop(ref)
                    try:
                        ok, seconds, error = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # node lost past its retries
                        ok, seconds, error = False, 0.0, str(exc).strip().splitlines()[0]
                        self.ledger.write(sid, "failed.json", {"error": error, "exit": None})
                        self.ledger.remove(sid, "running.json")
                        self.ledger.remove(sid, "queued.json")
                    self.finished(sid, ok, seconds, error, attempts[sid])
                    attempts[sid] += 1
        return self.summary()

    def summary(self) -> dict:
        self.status()
        self.bar.close()
        waiting = [s for s in self.graph.order if not self.ledger.done(s) and s not in self.failed]
        return {
            "done": len(self.graph.order) - len(waiting) - len(self.failed),
            "ran": self.ran,
            "skipped": self.skipped,
            "failed": self.failed,
            "waiting": waiting,
        }

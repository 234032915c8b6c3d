"""The embedded local Ray a driver starts for itself, and its clean-up when
the driver dies without stopping it (SIGKILL, OOM killer).

`ray.shutdown()` stops the processes of a Ray the driver started; a driver
killed outright never calls it, and Ray's per-node agents
(`ray::DashboardAgent`, `ray::RuntimeEnvAgent`) then outlive it for good.
`start_watchdog` spawns a small process in its own session that keeps a
list of the Ray processes this driver started and everything they spawned
(from /proc, every second) and, once the driver is gone (the pipe between
them closes), kills them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

WATCHDOG = r"""
import select, signal, sys, time
from preprocess.ray_local import descendants, kill_all
signal.signal(signal.SIGINT, signal.SIG_IGN)
roots = {int(p) for p in sys.argv[1:]}
known = descendants(roots)
while not select.select([sys.stdin], [], [], 1.0)[0]:  # until the driver's pipe closes
    known |= descendants(roots)
time.sleep(1.0)  # a driver that stops Ray itself does so first
kill_all(known | descendants(roots))
"""


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc)."""
    parent = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return parent


def descendants(roots) -> set[int]:
    """The live processes in `roots` and everything they spawned."""
    parent = _parents()
    found, todo = set(), [p for p in roots if p in parent]
    while todo:
        p = todo.pop()
        found.add(p)
        todo += [c for c, pp in parent.items() if pp == p and c not in found]
    return found


def kill_all(pids) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def ray_pids() -> list[int]:
    """The processes this driver's embedded Ray started (gcs, raylet, ...)."""
    import ray

    node = ray._private.worker._global_node
    return [
        info.process.pid
        for infos in node.all_processes.values()
        for info in infos
        if info.process is not None
    ]


def start_watchdog() -> subprocess.Popen | None:
    """Kill this (embedded) Ray session's processes once this driver is gone.
    Linux only (it reads /proc); elsewhere nothing is started."""
    if not sys.platform.startswith("linux"):
        return None
    return subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, *map(str, ray_pids())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def stop_watchdog(watchdog: subprocess.Popen | None) -> None:
    """After `ray.shutdown()`: let the watchdog end (nothing is left to kill)."""
    if watchdog is not None:
        watchdog.stdin.close()
        watchdog.wait()

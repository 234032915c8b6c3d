"""Stopping at a safe point on Ctrl-C or SIGTERM (a scheduler's preemption).

A long job runs inside `stop_requests()`: the first SIGINT/SIGTERM only sets
`requested`, which the job checks at its safe points (after an optimizer
step, between units); a second one raises `KeyboardInterrupt` at once. The
job then raises `Interrupted` with a line saying where it stopped and how to
go on, which the command line prints (exit status 130) without a traceback.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Interrupted(Exception):
    """A job stopped on request at a safe point; the message says how to resume."""


class StopRequest:
    requested: bool = False
    signal_name: str = ""


@contextmanager
def stop_requests():
    """Yield a `StopRequest` set by the first SIGINT/SIGTERM during the block."""
    state = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        if state.requested:
            raise KeyboardInterrupt
        state.requested, state.signal_name = True, signal.Signals(signum).name

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt, as SIGINT does (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)

"""User errors: bad input, bad configs, missing files. Only these become a
one-line `prog: error: ...` message and exit status 2; anything else is a
bug and keeps its traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with what the user gave (a file, a config, a folder), with a
    message that names it and says what to do."""


class InputNotFound(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


def exit_on_user_error(prog: str, run: Callable[[], int | None]) -> int:
    """Run `run()`; a `UserError` becomes `prog: error: message` on stderr and
    exit status 2; a stop on Ctrl-C or SIGTERM (`Interrupted`, or a bare
    KeyboardInterrupt) one line and exit status 130. Other exceptions
    propagate with their traceback."""
    from maskpt.core.interrupts import Interrupted, terminate_as_interrupt

    terminate_as_interrupt()
    try:
        return run() or 0
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130

"""User errors: bad input, bad configs, missing files. Only these become a
one-line `prog: error: ...` message and exit status 2; anything else is a
bug and keeps its traceback."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

from maskpt.core.interrupts import Interrupted, terminate_as_interrupt


class UserError(Exception):
    """A problem with what the user gave (a file, a config, a folder), with a
    message that names it and says what to do."""


class InputNotFound(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps, as Ray and torch's zip writer do) is a
    write that found no space left (ENOSPC, or a quota: EDQUOT)."""

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def exit_on_user_error(prog: str, run: Callable[[], int | None]) -> int:
    """Run `run()`; a `UserError` becomes `prog: error: message` on stderr and
    exit status 2; a stop on Ctrl-C or SIGTERM (`Interrupted`, or a bare
    KeyboardInterrupt) one line and exit status 130; a full disk one line
    and exit status 2. Other exceptions propagate with their traceback."""

    terminate_as_interrupt()
    try:
        return run() or 0
    except UserError as exc:
        message = str(exc)
        while message.startswith(f"{prog}: "):  # said by a layer below already
            message = message[len(prog) + 2 :].removeprefix("error: ")
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # an environment fault, not a bug: one line when the disk is full
        if not disk_full(exc):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(
            f"{prog}: error: no space left on the disk{where} ({exc.strerror or exc}); "
            "free space and rerun the same command: finished work is kept",
            file=sys.stderr,
        )
        return 2

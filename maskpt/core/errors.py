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
    exit status 2. Other exceptions propagate with their traceback."""
    try:
        return run() or 0
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2

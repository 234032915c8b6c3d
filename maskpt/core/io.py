"""Small file helpers every layer uses: atomic writes and checksums.

An atomic write goes to a temporary name in the same folder
(`.<name>.tmp-<pid>`), is flushed and fsynced, then renamed over the
target: a reader sees the old file or the whole new one, never a torn one,
and a crash leaves only a temporary file that the next run removes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from maskpt.core.errors import UserError

TMP_MARK = ".tmp-"


def tmp_name(path: Path) -> Path:
    """The temporary sibling an atomic write of `path` uses."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a temporary file, fsync it, then rename it to `path`."""
    path = Path(path)
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """`obj` as JSON (keys sorted, trailing newline), atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def sha256_stream(f: BinaryIO) -> str:
    """sha256 of what is left to read in a binary file object."""
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return sha256_stream(f)


class FolderInUse(UserError, ValueError):
    """An output folder that holds another run's work."""


def spec_diff(old: dict, new: dict, keys=None) -> list[str]:
    """One line per key whose value differs between two JSON specs."""
    keys = keys if keys is not None else sorted(old.keys() | new.keys())
    return [
        f"  {key}: folder has {json.dumps(old.get(key))}, this run {json.dumps(new.get(key))}"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def claim_spec(
    path: str | os.PathLike,
    spec: dict,
    what: str,
    keys=None,
    error: type[FolderInUse] = FolderInUse,
    record: bool = True,
) -> bool:
    """Check `spec` against the JSON spec at `path`: a difference raises
    `error` starting with `what` and listing the keys (all, or `keys`).
    True when it was there; otherwise it is recorded there (unless `record`
    is false), creating the folder."""
    path = Path(path)
    mine = json.loads(json.dumps(spec))  # tuples -> lists, as stored
    if path.exists():
        try:
            theirs = json.loads(path.read_text())
        except json.JSONDecodeError:
            theirs = {}
        diff = spec_diff(theirs, mine, keys)
        if diff:
            raise error(
                f"{what} ({path.name} differs):\n"
                + "\n".join(diff)
                + "\nUse another output folder, or delete this one to start over."
            )
        return True
    if record:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, mine)
    return False

"""A folder on any storage fsspec knows: a local path, `file://`, `s3://`,
`gs://`, `memory://`, ... Shard folders are written and read through it, so
every worker of a cluster writes to the same place.

Writes are whole-or-nothing: on a local disk a file is written under a
temporary name, fsynced and renamed (`maskpt.core.io.atomic_write`); on an
object store an object becomes visible only once its upload completes, so it
is written in place. `Storage.open_for_writing` checks, before any work, that
the scheme has a filesystem installed and that the folder can be written.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import os
import posixpath
import socket
import types
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import zstandard

from maskpt.core.errors import UserError
from maskpt.core.io import TMP_MARK, atomic_write, sha256_stream


class StorageError(UserError, OSError):
    """A folder that cannot be reached or written; the message names it."""


def is_url(path: str) -> bool:
    return "://" in str(path)


class Storage:
    """A folder (`root`) on an fsspec filesystem; paths below it are relative."""

    def __init__(self, root: str):
        self.root_url = str(root).rstrip("/") or str(root)
        self.fs, self.root = _url_to_fs(self.root_url)
        self.local = "file" in _protocols(self.fs)

    # -- names --------------------------------------------------------------------------
    def path(self, rel: str = "") -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def url(self, rel: str = "") -> str:
        """The full URL (or local path) of `rel`, for other tools."""
        base = self.root if self.local and not is_url(self.root_url) else self.root_url
        return posixpath.join(base, rel) if rel else base

    # -- reading ------------------------------------------------------------------------
    def exists(self, rel: str = "") -> bool:
        return self.fs.exists(self.path(rel))

    def size(self, rel: str) -> int:
        return int(self.fs.size(self.path(rel)))

    def open(self, rel: str, mode: str = "rb"):
        return self.fs.open(self.path(rel), mode)

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return f.read()

    def read_json(self, rel: str):
        return json.loads(self.read_bytes(rel).decode("utf-8"))

    def sha256(self, rel: str) -> str:
        with self.open(rel) as f:
            return sha256_stream(f)

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) of the entries in `rel`; empty when it does not exist."""
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(str(e).rstrip("/")) for e in entries)

    # -- writing ------------------------------------------------------------------------
    def makedirs(self, rel: str = "") -> None:
        self.fs.makedirs(self.path(rel), exist_ok=True)

    def write(self, rel: str, write: Callable[[BinaryIO], None]) -> None:
        """Write `rel` whole or not at all (see the module docstring), creating
        its folder."""
        if self.local:
            self.fs.makedirs(posixpath.dirname(self.path(rel)), exist_ok=True)
            atomic_write(self.path(rel), write)
            return
        with self.fs.open(self.path(rel), "wb") as f:
            write(f)

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.write(rel, lambda f: f.write(data))

    def write_json(self, rel: str, obj, indent: int | None = 2) -> None:
        text = json.dumps(obj, indent=indent, sort_keys=True) + "\n"
        self.write_bytes(rel, text.encode("utf-8"))

    def move(self, src: str, dst: str) -> None:
        """Rename `src` to `dst` (replacing it); a copy and delete on object stores."""
        if self.local:
            self.fs.makedirs(posixpath.dirname(self.path(dst)), exist_ok=True)
        self.fs.mv(self.path(src), self.path(dst))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(rel))

    def remove_tree(self, rel: str) -> None:
        """Remove the folder `rel` and everything below it (nothing when absent)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(rel), recursive=True)

    def remove_stale_tmp(self, rel: str = "") -> None:
        """Temporary files that interrupted local writes left in `rel`."""
        for name in self.listdir(rel):
            if name.startswith(".") and TMP_MARK in name:
                self.remove(posixpath.join(rel, name))

    def check_writable(self) -> None:
        """Write, read back and delete a probe file in the folder; folders
        created for the probe are removed again, so a run refused later for
        another reason leaves nothing behind."""
        probe = f".maskpt-probe{TMP_MARK}check"
        created = []  # local folders this check makes, deepest first
        if self.local:
            at = self.root
            while at and not self.fs.exists(at):
                created.append(at)
                at = posixpath.dirname(at.rstrip("/"))
        try:
            self.makedirs()
            self.write_bytes(probe, b"ok")
            ok = self.read_bytes(probe) == b"ok"
            self.remove(probe)
            for folder in created:
                os.rmdir(folder)
        except (OSError, PermissionError, ValueError) as exc:
            raise StorageError(f"{self.root_url}: cannot write there ({exc})") from None
        if not ok:
            raise StorageError(f"{self.root_url}: a file written there did not read back")


def _url_to_fs(url: str):
    """(filesystem, path) of a local path or URL; a clear error for a scheme
    whose fsspec package is not installed."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        scheme = url.split("://", 1)[0]
        raise StorageError(
            f"{url}: no filesystem for {scheme}:// is installed ({exc}); "
            f"install its fsspec package (s3://: pip install 'maskpt[s3]'; gs://: gcsfs) "
            "or use a local path"
        ) from None


def _protocols(fs) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)


class RemotePath:
    """An input file on fsspec storage (`s3://bucket/dump.xml.bz2`, `gs://...`,
    `https://...`) with the part of `pathlib.Path`'s interface the readers and
    the planner use: name, suffix, stem, open, exists, is_file, is_dir, stat,
    resolve, with_name. `str()` gives the URL back. Workers open it
    themselves, so every node needs the filesystem package and credentials
    (for S3: s3fs and the usual AWS environment)."""

    def __init__(self, url: str):
        self.url = str(url)
        self.fs, self._path = _url_to_fs(self.url)

    def __str__(self) -> str:
        return self.url

    __repr__ = __str__

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def name(self) -> str:
        return posixpath.basename(self.url.rstrip("/"))

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    def with_name(self, name: str) -> RemotePath:
        return RemotePath(self.url.rstrip("/").rsplit("/", 1)[0] + "/" + name)

    def open(self, mode: str = "rb"):
        return self.fs.open(self._path, mode)

    def exists(self) -> bool:
        return self.fs.exists(self._path)

    def is_file(self) -> bool:
        return self.fs.isfile(self._path)

    def is_dir(self) -> bool:
        return self.fs.isdir(self._path)

    def stat(self):
        return types.SimpleNamespace(st_size=int(self.fs.size(self._path)))

    def resolve(self) -> RemotePath:
        return self


def missing_input(name) -> str:
    """Why an input that `exists()` denies is not there: "does not exist", or,
    for an http(s) URL whose server does not answer, that it cannot be reached
    (fsspec reports both as a missing file)."""

    url = urllib.parse.urlparse(str(name))
    if url.scheme in ("http", "https") and url.hostname:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=5).close()
        except OSError as exc:
            return f"input {name}: cannot reach {url.hostname}:{port} ({exc.strerror or exc})"
    return f"input {name} does not exist"


def input_path(name):
    """A local input (a path or a `file://` URL) as a `pathlib.Path`, any other
    URL as a `RemotePath`."""

    if isinstance(name, Path | RemotePath):
        return name
    name = str(name)
    if name.startswith("file://"):
        return Path(name[len("file://") :])
    return RemotePath(name) if is_url(name) else Path(name)


class _ZstdFrames(io.RawIOBase):
    """Zstandard frames decompressed as read, one after another; a stream
    that ends inside a frame raises EOFError (as gzip and bz2 do), where
    zstandard's own `stream_reader` just stops."""

    CHUNK = 1 << 20

    def __init__(self, raw, decompressor):
        self._raw, self._dctx = raw, decompressor
        self._obj, self._fed = decompressor.decompressobj(), False
        self._out, self._pos = b"", 0

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Decompress more into `_out`; False at the end of the input."""
        self._out, self._pos = b"", 0
        while not self._out:
            data = self._raw.read(self.CHUNK)
            if not data:
                if self._fed and not self._obj.eof:
                    raise EOFError("zstd stream ended inside a frame (truncated)")
                return False
            while data:
                if self._obj.eof:  # the next frame
                    self._obj, self._fed = self._dctx.decompressobj(), False
                self._fed = True
                self._out += self._obj.decompress(data)
                data = self._obj.unused_data if self._obj.eof else b""
        return True

    def readinto(self, buffer) -> int:
        if self._pos >= len(self._out) and not self._fill():
            return 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n


class _Layered(io.BufferedReader):
    """A decompressing reader that closes the file under it too."""

    def __init__(self, stream, under):
        super().__init__(stream)
        self._under = under

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._under.close()


_METERS: list = []
"""The callbacks of the open `metered` blocks, innermost last."""


@contextlib.contextmanager
def metered(callback: Callable[[int], None], paths=None):
    """Inputs opened with `open_input` inside the block (those of `paths`
    only, when given) report the bytes read from the file (compressed bytes
    for compressed files) to `callback(n)`: what a progress bar over an input
    that cannot be counted in records ahead of time counts, against the
    file's size."""
    entry = (callback, None if paths is None else {str(p) for p in paths})
    _METERS.append(entry)
    try:
        yield
    finally:
        _METERS.remove(entry)


def _meter_of(path) -> Callable[[int], None] | None:
    for callback, paths in reversed(_METERS):
        if paths is None or str(path) in paths:
            return callback
    return None


class _Counting(io.RawIOBase):
    """A binary file whose reads are reported to a meter."""

    def __init__(self, f, meter: Callable[[int], None]):
        self._f, self._meter = f, meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer)
        if n:
            self._meter(n)
        return n

    def seekable(self) -> bool:
        return self._f.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


def open_input(path, compression: str | None = None) -> BinaryIO:
    """A local path or `RemotePath` opened for binary reading; with
    `compression` ("bz2", "gzip", "zstd") decompressed as it is read; inside
    a `metered` block its reads are counted."""
    raw = path.open("rb")
    meter = _meter_of(path)
    if meter is not None:
        raw = io.BufferedReader(_Counting(raw, meter))
    if compression is None:
        return raw
    try:
        if compression == "bz2":
            stream = bz2.BZ2File(raw, "rb")
        elif compression == "gzip":
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        elif compression == "zstd":
            stream = _ZstdFrames(raw, zstandard.ZstdDecompressor())
        else:
            raise ValueError(f"unknown compression {compression!r}")
    except BaseException:
        raw.close()
        raise
    return _Layered(stream, raw)

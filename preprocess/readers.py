"""Streaming document readers. Each yields `Document`s and, for every record it
cannot use, a `Skip` naming the file, line and reason, so nothing read is
silently lost. Memory stays flat: files are read line by line.

- JSONL: one object per line with `id`, `title` (optional) and `text`, the
  layout of Hugging Face's `wikipedia` dataset; plain, or compressed as a
  whole (`.jsonl.gz`, `.jsonl.zst`). A plain file can be read by byte range
  (a planned unit: the lines that start inside it).
- Parquet: columns `id`, `text` and optionally `title` (the layout of the
  `wikimedia/wikipedia` dataset; `url` and others are ignored), by row group.
- Plain text: documents separated by blank lines; ids `{file stem}-{n}`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import zstandard

from maskpt.core.errors import InputNotFound, UserError
from maskpt.core.records import Document, Skip
from maskpt.core.storage import input_path, missing_input, open_input
from preprocess.wikipedia import read_wikipedia_dump, read_wikipedia_pages


class InputError(UserError, ValueError):
    """An input file that cannot be read to its end (truncated, corrupt)."""


def _decompression_errors() -> tuple[type[BaseException], ...]:
    return (EOFError, zlib.error, zstandard.ZstdError, OSError)


_DECOMPRESSION_ERRORS = _decompression_errors()
"""What gzip and zstandard raise for a stream that ends early or fails its check."""


def _open_lines(path):
    name = path.name.lower()
    if name.endswith(".gz"):
        return open_input(path, "gzip")
    if name.endswith(".zst"):
        return open_input(path, "zstd")
    return open_input(path)


def _lines(f, start: int, end: int | None) -> Iterator[bytes]:
    if start:
        f.seek(start)
    while end is None or f.tell() < end:
        raw = f.readline()
        if not raw:
            return
        yield raw


def read_jsonl(
    path: str | Path, start: int = 0, end: int | None = None, first_line: int = 1
) -> Iterator[Document | Skip]:
    """The records of a JSONL file, or of its lines in bytes [start, end)
    (numbered from `first_line` in messages)."""
    path = input_path(path)
    lineno = first_line - 1
    try:
        with _open_lines(path) as f:
            for lineno, raw in enumerate(_lines(f, start, end), first_line):
                yield from _jsonl_record(raw, f"{path}:{lineno}")
    except _DECOMPRESSION_ERRORS as exc:
        raise InputError(
            f"{path}: truncated or corrupt compressed file after line {lineno}: {exc}"
        ) from exc


def _jsonl_record(raw: bytes, where: str) -> Iterator[Document | Skip]:
    """The document on one JSONL line, a Skip saying why not, or nothing (blank)."""
    if not raw.strip():
        return
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield Skip(where, "invalid_utf8", f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})")
        return
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        yield Skip(where, "invalid_json", f"{where}: {exc.msg} (column {exc.colno})")
        return
    if not isinstance(obj, dict):
        yield Skip(where, "invalid_json", f"{where}: expected an object, got {type(obj).__name__}")
        return
    bad = _bad_field(obj)
    if bad:
        yield Skip(where, f"missing_field:{bad}", f"{where}: field {bad!r} missing or not a string")
        return
    yield _document(obj, where)


def _document(obj: dict, where: str) -> Document | Skip:
    doc = Document(id=str(obj["id"]), text=obj["text"], title=str(obj.get("title") or ""))
    broken = next((k for k in ("id", "text", "title") if not _is_text(getattr(doc, k))), None)
    if broken:
        return Skip(
            where,
            "invalid_text",
            f"{where}: field {broken!r} holds a lone surrogate escape, not text",
        )
    return doc


@contextmanager
def parquet_file(path):
    """A `pyarrow.parquet.ParquetFile` of a local path or `RemotePath` (only
    the footer is read until row groups are asked for), closed afterwards
    with the remote file it reads (pyarrow closes only files it opened)."""
    import pyarrow.parquet as pq

    with ExitStack() as stack:
        source = path if isinstance(path, Path) else stack.enter_context(path.open("rb"))
        pf = pq.ParquetFile(source)
        stack.callback(pf.close)
        yield pf


def read_parquet(path: str | Path, row_groups=None) -> Iterator[Document | Skip]:
    """The rows of a Parquet file (or of `row_groups`), one row group in memory at a time."""
    path = input_path(path)
    with ExitStack() as stack:
        try:
            pf = stack.enter_context(parquet_file(path))
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise UserError(f"input {path}: not a Parquet file ({exc})") from exc
        yield from _parquet_rows(pf, path, row_groups)


def _parquet_rows(pf, path, row_groups) -> Iterator[Document | Skip]:
    names = set(pf.schema_arrow.names)
    missing = [c for c in ("id", "text") if c not in names]
    if missing:
        raise UserError(
            f"input {path}: Parquet column(s) {', '.join(missing)} missing "
            f"(has {', '.join(sorted(names))})"
        )
    import pyarrow as pa

    columns = ["id", "text"] + (["title"] if "title" in names else [])
    for c in columns[1:]:
        kind = pf.schema_arrow.field(c).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise UserError(f"input {path}: Parquet column {c!r} holds {kind}, not strings")
    groups = range(pf.metadata.num_row_groups) if row_groups is None else row_groups
    first = sum(pf.metadata.row_group(g).num_rows for g in range(groups[0])) if groups else 0
    for g in groups:
        try:
            rows = pf.read_row_group(g, columns=columns).to_pylist()
        except (OSError, pa.ArrowException) as exc:  # a corrupt page, a bad compression block
            raise InputError(
                f"{path}: row group {g} (rows from {first}) cannot be read: {exc}"
            ) from exc
        for k, obj in enumerate(rows, first):
            where = f"{path}:row {k}"
            bad = _bad_field(obj)
            if bad:
                yield Skip(
                    where, f"missing_field:{bad}", f"{where}: field {bad!r} missing or not a string"
                )
            else:
                yield _document(obj, where)
        first += pf.metadata.row_group(g).num_rows


def _is_text(s: str) -> bool:
    """False for strings that cannot be UTF-8 (a JSON "\\ud800" escape alone)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_field(obj: dict) -> str | None:
    if not isinstance(obj.get("id"), str | int) or isinstance(obj.get("id"), bool):
        return "id"
    if not isinstance(obj.get("text"), str):
        return "text"
    return None


def read_text(path: str | Path) -> Iterator[Document | Skip]:
    """Blank-line separated documents from a UTF-8 text file."""
    path = input_path(path)
    buf: list[str] = []
    n = 0
    start = 1
    with open_input(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                where = f"{path}:{lineno}"
                yield Skip(
                    where, "invalid_utf8", f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})"
                )
                continue
            if line.strip():
                if not buf:
                    start = lineno
                buf.append(line.rstrip("\n"))
                continue
            if buf:
                yield Document(
                    id=f"{path.stem}-{n}", text="\n".join(buf), title=f"{path.name}:{start}"
                )
                n += 1
                buf = []
    if buf:
        yield Document(id=f"{path.stem}-{n}", text="\n".join(buf), title=f"{path.name}:{start}")


def read_any(path: str | Path, raw: bool = False) -> Iterator:
    """Pick a reader from the file name: `.jsonl`, `.txt`, or a Wikipedia
    dump `.xml` / `.xml.bz2`. With `raw=True`, dump pages come as
    `RawPage`s whose wikitext is cleaned later (`RawPage.to_document`)."""
    p = input_path(path)
    if not p.exists():
        raise InputNotFound(missing_input(p))
    name = p.name.lower()
    if name.endswith((".jsonl", ".json", ".jsonl.gz", ".jsonl.zst")):
        return read_jsonl(p)
    if name.endswith(".parquet"):
        return read_parquet(p)
    if name.endswith(".txt"):
        return read_text(p)
    if name.endswith((".xml", ".xml.bz2")):
        return read_wikipedia_pages(p) if raw else read_wikipedia_dump(p)
    if p.is_dir():
        raise UserError(f"input {p} is a folder; give the files in it")
    raise UserError(
        f"input {p}: unknown format (expected .jsonl, .jsonl.gz, .jsonl.zst, "
        ".parquet, .txt, .xml or .xml.bz2)"
    )

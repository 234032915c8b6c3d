"""Streaming document readers. Each yields `Document`s and, for every record it
cannot use, a `Skip` naming the file, line and reason, so nothing read is
silently lost. Memory stays flat: files are read line by line.

- JSONL: one object per line with `id`, `title` (optional) and `text`, the
  layout of Hugging Face's `wikipedia` dataset.
- Plain text: documents separated by blank lines; ids `{file stem}-{n}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from maskpt.core.errors import InputNotFound, UserError
from maskpt.core.records import Document, Skip
from preprocess.wikipedia import read_wikipedia_dump, read_wikipedia_pages


def read_jsonl(path: str | Path) -> Iterator[Document | Skip]:
    path = Path(path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Skip(
                    where, "invalid_utf8", f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})"
                )
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Skip(where, "invalid_json", f"{where}: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(obj, dict):
                yield Skip(
                    where, "invalid_json", f"{where}: expected an object, got {type(obj).__name__}"
                )
                continue
            bad = _bad_field(obj)
            if bad:
                yield Skip(
                    where, f"missing_field:{bad}", f"{where}: field {bad!r} missing or not a string"
                )
                continue
            doc = Document(id=str(obj["id"]), text=obj["text"], title=str(obj.get("title") or ""))
            broken = next(
                (k for k in ("id", "text", "title") if not _is_text(getattr(doc, k))), None
            )
            if broken:
                yield Skip(where, "invalid_text", f"{where}: field {broken!r} holds a lone "
                                                  "surrogate escape, not text")  # fmt: skip
                continue
            yield doc


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
    path = Path(path)
    buf: list[str] = []
    n = 0
    start = 1
    with path.open("rb") as f:
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
    p = Path(path)
    if not p.exists():
        raise InputNotFound(f"input {p} does not exist")
    name = p.name.lower()
    if name.endswith((".jsonl", ".json")):
        return read_jsonl(p)
    if name.endswith(".txt"):
        return read_text(p)
    if name.endswith((".xml", ".xml.bz2")):
        return read_wikipedia_pages(p) if raw else read_wikipedia_dump(p)
    if p.is_dir():
        raise UserError(f"input {p} is a folder; give the files in it")
    raise UserError(f"input {p}: unknown format (expected .jsonl, .txt, .xml or .xml.bz2)")

"""Planning: inputs -> units, without parsing them in the driver.

A unit names a part of one input that a worker reads itself:

| input | unit | the driver reads |
|---|---|---|
| multistream `.xml.bz2` with its `-index.txt.bz2` | whole bz2 streams, >= docs_per_unit pages | the index |
| `.jsonl` / `.json` | a byte range of docs_per_unit lines, cut at line ends | newline positions (a byte scan, no parsing) |
| `.parquet` | row groups, >= docs_per_unit rows | the footer |
| `.txt` | the whole file | nothing |
| `.xml`, `.xml.bz2` without an index, `.jsonl.gz`, `.jsonl.zst` | docs_per_unit records | everything: these cannot be split, so the driver streams them to the workers (with a warning) |

Unit boundaries depend on the input and `docs_per_unit` alone, never on the
number of workers or nodes; a unit's id is `<input:03d>-<unit number:06d>`,
so the same input gives the same units, ids and output however it is run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from maskpt.core.errors import InputNotFound, UserError
from maskpt.core.storage import input_path, missing_input
from preprocess import readers
from preprocess.multistream import index_path, read_range, stream_ranges
from preprocess.readers import parquet_file, read_any


@dataclass(frozen=True)
class Unit:
    """One unit of work: a part of one input (`kind`, byte or row range),
    or the records themselves for inputs the driver streams (`items`)."""

    id: str
    path: str = ""
    kind: str = "records"  # multistream | lines | parquet | file | records
    start: int = 0
    end: int = 0
    first_line: int = 1
    size: int = 0  # records it holds, where known in advance (progress totals)
    items: tuple = ()

    def read(self) -> Iterator:
        """The unit's records: documents, raw dump pages and skips."""

        if self.kind == "records":
            return iter(self.items)
        if self.kind == "multistream":
            return read_range(self.path, self.start, self.end)
        if self.kind == "lines":
            return readers.read_jsonl(self.path, self.start, self.end, self.first_line)
        if self.kind == "parquet":
            return readers.read_parquet(self.path, range(self.start, self.end))
        return readers.read_any(self.path, raw=True)


def splittable(path: Path) -> str:
    """How an input is cut: multistream, lines, parquet, file or records."""

    name = path.name.lower()
    if name.endswith(".xml.bz2") and index_path(path):
        return "multistream"
    if name.endswith((".jsonl", ".json")):
        return "lines"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".txt"):
        return "file"
    return "records"


def plan_units(inputs, docs_per_unit: int, warn=None) -> Iterator[Unit]:
    """Every unit of every input, in input order."""
    if warn is None:

        def warn(msg: str) -> None:  # above the progress bars, not inside their line
            tqdm.write(f"warning: {msg}", file=sys.stderr)

    for i, name in enumerate(inputs):
        path = input_path(name)
        if not path.exists():
            raise InputNotFound(missing_input(path))
        if path.is_dir():
            raise UserError(f"input {path} is a folder; give the files in it")
        kind = splittable(path)
        if kind == "records":
            warn(
                f"{path} cannot be split (no multistream index, or compressed as a whole): "
                "the driver streams it to the workers"
            )
        for n, unit in enumerate(_cut(path, kind, docs_per_unit)):
            yield Unit(f"{i:03d}-{n:06d}", str(path), kind, *unit)


def _cut(path: Path, kind: str, per_unit: int) -> Iterator[tuple]:
    """(start, end, first_line, size[, items]) of each unit of one input."""
    if kind == "multistream":
        first, count = None, 0
        for start, end, pages in stream_ranges(path, index_path(path)):
            first = start if first is None else first
            count += pages
            if count >= per_unit:
                yield first, end, 1, count
                first, count = None, 0
        if first is not None:
            yield first, end, 1, count
    elif kind == "lines":
        yield from line_ranges(path, per_unit)
    elif kind == "parquet":
        yield from _row_groups(path, per_unit)
    elif kind == "file":
        yield 0, path.stat().st_size, 1, 0
    else:
        items: list = []
        for item in read_any(path, raw=True):
            items.append(item)
            if len(items) == per_unit:
                yield 0, 0, 1, len(items), tuple(items)
                items = []
        if items:
            yield 0, 0, 1, len(items), tuple(items)


def line_ranges(path: Path, lines: int, chunk: int = 1 << 23) -> Iterator[tuple]:
    """Byte ranges of `lines` lines each (the last may hold fewer), found by
    scanning for newlines: no decoding, no parsing."""
    start, line_no, count, pos = 0, 1, 0, 0
    with path.open("rb") as f:
        while block := f.read(chunk):
            k = 0
            while count + block.count(b"\n", k) >= lines:
                for _ in range(lines - count):
                    k = block.index(b"\n", k) + 1
                yield start, pos + k, line_no, lines
                start, line_no, count = pos + k, line_no + lines, 0
            count += block.count(b"\n", k)
            last = block[-1:]
            pos += len(block)
    if pos > start:  # the last lines, the final one perhaps without a newline
        yield start, pos, line_no, count + (last != b"\n")


def _row_groups(path: Path, rows: int) -> Iterator[tuple]:
    with parquet_file(path) as pf:
        meta = pf.metadata
    first, n = 0, 0
    for g in range(meta.num_row_groups):
        n += meta.row_group(g).num_rows
        if n >= rows:
            yield first, g + 1, 1, n
            first, n = g + 1, 0
    if first < meta.num_row_groups:
        yield first, meta.num_row_groups, 1, n

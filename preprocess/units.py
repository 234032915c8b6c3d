"""Units of work and what one worker does with a unit.

A unit is a deterministic slice of the input: `docs_per_unit` consecutive
records of one input file (documents, raw dump pages, and records the reader
could not use, which are counted where they fall). Its id is
`<input index:03d>-<unit number:06d>`. Processing a unit — clean wikitext,
segment, mask, write its shards, then its `.done` marker — depends only on
the unit's records and the run's spec, so the output is the same whatever
the worker count, and a rerun can skip units whose marker exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from maskpt.masking import Counts, mask_documents
from preprocess.readers import read_any
from preprocess.shards import row_of, write_shard
from preprocess.wikipedia import RawPage

PROGRESS = "_progress"


@dataclass
class Unit:
    id: str
    items: list  # Document | RawPage | Skip


def iter_units(inputs, docs_per_unit: int) -> Iterator[Unit]:
    """Stream the inputs as units, in order; memory holds one unit."""
    for i, path in enumerate(inputs):
        items: list = []
        n = 0
        for item in read_any(path, raw=True):
            items.append(item)
            if len(items) == docs_per_unit:
                yield Unit(f"{i:03d}-{n:06d}", items)
                items, n = [], n + 1
        if items:
            yield Unit(f"{i:03d}-{n:06d}", items)


def marker_path(out: Path, unit_id: str) -> Path:
    return out / PROGRESS / f"{unit_id}.done"


def read_marker(out: Path, unit_id: str) -> dict | None:
    try:
        return json.loads(marker_path(out, unit_id).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None  # a torn marker: the unit is redone


def _documents(items):
    for item in items:
        yield item.to_document() if isinstance(item, RawPage) else item


def process_unit(
    unit: Unit,
    tokenizer,
    policy,
    seed: int,
    max_length: int,
    out: Path,
    formats: list[str],
    shard_size: int,
) -> dict:
    """Mask one unit, write its shards and marker; return the marker."""
    counts = Counts()
    rows = [
        row_of(ex)
        for ex in mask_documents(
            _documents(unit.items), tokenizer, policy, seed, counts, max_length
        )
    ]
    shards = []
    for k in range(0, max(1, len(rows)), shard_size):
        part = rows[k : k + shard_size]
        if not part:
            break
        stem = out / f"part-{unit.id}-{k // shard_size:03d}"
        for fmt in formats:
            shards.append({**write_shard(stem, fmt, part), "unit": unit.id})
    marker = {"unit": unit.id, "counts": counts.as_dict(), "shards": shards}
    path = marker_path(out, unit.id)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(marker, sort_keys=True))
    os.replace(tmp, path)  # the marker goes last: shards are complete before it exists
    return marker

"""What one worker does with a unit, and the marker that says it is done.

A unit (`preprocess/plan.py`) is a deterministic part of one input, planned
from the input alone: the worker reads it itself (a byte range of bz2
streams or of lines, row groups, a file) or gets its records from the
driver (inputs that cannot be split). Its id is `<input:03d>-<unit:06d>`.
Processing a unit — read, clean wikitext, segment, mask, write its shards,
then its `.done` marker — depends only on the unit and the run's spec, so
the output is the same whatever the worker or node count, and a rerun can
skip units whose marker exists and whose shards are all there.

A unit's shards are staged as `_progress/units/part-<unit>-<k>.<ext>`; when
every unit is done, `preprocess.manifest.finalize` moves them to their
numbered names (`arrow/shard-000000.arrow`, ...).
"""

from __future__ import annotations

import gc
import json
from dataclasses import asdict, dataclass

from maskpt.core.storage import Storage
from preprocess.counts import Counts
from preprocess.index import PROGRESS, ShardEntry
from preprocess.masking import mask_documents
from preprocess.plan import Unit
from preprocess.shards import FORMATS, row_of, write_shard
from preprocess.wikipedia import RawPage

STAGING = f"{PROGRESS}/units"


@dataclass(frozen=True)
class UnitMarker:
    """`_progress/<unit>.done`: a finished unit's counts, (staged) shards and
    the ids of the documents it wrote (for finding ids repeated across units)."""

    unit: str
    counts: Counts
    shards: tuple[ShardEntry, ...]
    doc_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "unit": self.unit,
            "counts": self.counts.as_dict(),
            "shards": [asdict(s) for s in self.shards],
            "doc_ids": list(self.doc_ids),
        }

    @classmethod
    def from_dict(cls, d: dict) -> UnitMarker:
        return cls(
            d["unit"],
            Counts.from_dict(d["counts"]),
            tuple(ShardEntry(**s) for s in d["shards"]),
            tuple(d["doc_ids"]),
        )


def marker_name(unit_id: str) -> str:
    return f"{PROGRESS}/{unit_id}.done"


def read_marker(storage: Storage, unit_id: str, moved: dict[str, str] | None = None):
    """The unit's marker when it is done and every shard it lists is there
    (staged, or already moved to the name in `moved`); None means: do it
    (again). A torn marker or a deleted shard leads to a redo."""

    try:
        marker = UnitMarker.from_dict(storage.read_json(marker_name(unit_id)))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        return None
    for s in marker.shards:
        if not storage.exists(s.path) and not (moved and storage.exists(moved.get(s.path, ""))):
            return None
    return marker


def tune_gc() -> None:
    """Set up this process's garbage collector for unit work; call it once the
    tokenizer and policy are loaded. `gc.freeze()` moves what is alive now
    (tokenizer, policy, models: never garbage) out of the collector's sight,
    and a gen-0 threshold of 50,000 instead of CPython's 700 stops it walking
    the millions of short-lived nodes a unit's wikitext parsing allocates
    over and over. Same output; `orig_v1` units run 1.34x as fast with the
    same peak memory (bench/unit_gc.py, BENCHMARKS.md)."""

    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _documents(items):
    for item in items:
        yield item.to_document() if isinstance(item, RawPage) else item


@dataclass(frozen=True)
class UnitSettings:
    """What every unit of a run is masked and written with."""

    seed: int
    max_length: int
    formats: tuple[str, ...]
    shard_size: int

    @classmethod
    def of(cls, cfg) -> UnitSettings:
        """The settings of a `PreprocessConfig`."""
        return cls(cfg.seed, cfg.max_length, tuple(cfg.formats), cfg.shard_size)


def process_unit(
    unit: Unit, tokenizer, policy, settings: UnitSettings, storage: Storage, guard=None
) -> UnitMarker:
    """Mask one unit, write its staged shards and marker; return the marker.
    `guard()`, when given, is called before writing and may raise to stop."""
    counts = Counts()
    docs = _documents(unit.read())
    rows = [
        row_of(ex, ann)
        for ex, ann in mask_documents(
            docs, tokenizer, policy, settings.seed, counts, settings.max_length
        )
    ]
    if guard is not None:
        guard()
    prefix = f"{STAGING}/part-{unit.id}-"
    shards = write_rows(storage, prefix, rows, settings.formats, settings.shard_size, unit.id)
    if guard is not None:
        guard()
    return write_marker(storage, UnitMarker(unit.id, counts, shards, doc_ids_of(rows)))


def doc_ids_of(rows) -> tuple[str, ...]:
    """The documents of `rows`, once each, in order."""
    return tuple(dict.fromkeys(r["doc_id"] for r in rows))


def write_rows(
    storage: Storage, prefix: str, rows: list[dict], formats, shard_size: int, unit: str
) -> tuple[ShardEntry, ...]:
    """`rows` as staged shards `<prefix><k:03d>.<ext>` of `shard_size` rows, every format."""
    shards = []
    for k in range(0, len(rows), shard_size):
        stem = f"{prefix}{k // shard_size:03d}"
        for fmt in formats:
            shards.append(
                write_shard(storage, stem + FORMATS[fmt], fmt, rows[k : k + shard_size], unit)
            )
    return tuple(shards)


def write_marker(storage: Storage, marker: UnitMarker) -> UnitMarker:
    """The marker goes last: the shards it lists are complete before it exists."""
    storage.write_json(marker_name(marker.unit), marker.as_dict(), indent=None)
    return marker

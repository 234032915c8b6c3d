"""Document ids repeated across units: the first unit in input order keeps
its document, every later unit drops it — the rows are rewritten out of that
unit's staged shards and the document is counted as skipped
(`duplicate_id`). Within one unit `preprocess.masking.iter_segments` already
keeps only the first, so ids are unique in a finished folder by construction.

Ids are compared through 64-bit hashes in numpy (8 bytes per document: all of
English Wikipedia fits in tens of MB), the strings only where hashes collide.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from maskpt.core.storage import Storage
from preprocess.index import READ_PREFERENCE
from preprocess.shards import read_rows
from preprocess.units import STAGING, UnitMarker, doc_ids_of, write_marker, write_rows


def _hash(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")


def find_repeats(markers) -> dict[str, set[str]]:
    """Unit -> the ids of documents it wrote that an earlier unit wrote first."""
    markers = sorted(markers, key=lambda m: m.unit)
    hashes = np.fromiter((_hash(d) for m in markers for d in m.doc_ids), dtype=np.uint64)
    values, counts = np.unique(hashes, return_counts=True)
    suspects = set(values[counts > 1].tolist())
    repeats: dict[str, set[str]] = {}
    first: set[str] = set()
    for m in markers:
        for d in m.doc_ids:
            if _hash(d) not in suspects:
                continue
            if d in first:
                repeats.setdefault(m.unit, set()).add(d)
            else:
                first.add(d)
    return repeats


def _rewrite(storage: Storage, m: UnitMarker, drop: set[str], formats, shard_size: int):
    """The unit without the documents in `drop`: new staged shards, counts and marker."""
    fmt = next(f for f in READ_PREFERENCE if f in formats)
    rows = [r for s in m.shards if s.format == fmt for r in read_rows(storage, s.path, fmt)]
    keep = [r for r in rows if r["doc_id"] not in drop]
    gone = [r for r in rows if r["doc_id"] in drop]
    c = replace(
        m.counts,
        skipped_documents=m.counts.skipped_documents.copy(),
        skipped_segments=m.counts.skipped_segments.copy(),
    )
    n_docs = len(drop & set(m.doc_ids))
    c.documents_written -= n_docs
    c.skipped_documents["duplicate_id"] += n_docs
    c.segments_written -= len(gone)
    c.tokens_written -= sum(len(r["original_ids"]) for r in gone)
    c.masked_tokens -= sum(sum(r["masked"]) for r in gone)
    c.content_tokens -= sum(len(r["original_ids"]) - 2 for r in gone)
    shards = write_rows(storage, f"{STAGING}/part-{m.unit}-d", keep, formats, shard_size, m.unit)
    new = write_marker(storage, UnitMarker(m.unit, c, shards, doc_ids_of(keep)))
    for s in m.shards:  # only once the new marker stands
        storage.remove(s.path)
    return new


def drop_repeats(storage: Storage, markers, formats, shard_size: int) -> list[UnitMarker]:
    """The markers with every repeated document dropped from the later units."""
    repeats = find_repeats(markers)
    return [
        _rewrite(storage, m, repeats[m.unit], formats, shard_size) if m.unit in repeats else m
        for m in sorted(markers, key=lambda m: m.unit)
    ]

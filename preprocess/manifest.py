"""A preprocessing run's spec, the claim on its output folder, and the
`index.json` written when it completes.

While a run is going, `_progress/run.json` holds the spec (everything in
`index.json` that decides the output: policy, seed, max length, tokenizer,
inputs, formats, shard size, units) and `_progress/<unit>.done` one marker
per finished unit (`preprocess/units.py`). A run into a folder whose spec
differs is refused; when every unit is done, `index.json` (the typed
`preprocess.index.ShardIndex`) is written last and atomically.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from maskpt import __version__
from maskpt.core.io import FolderInUse, claim_spec, remove_stale_tmp, write_json_atomic
from preprocess.counts import merge_counts
from preprocess.index import INDEX, PROGRESS, ShardIndex

SPEC_KEYS = (
    "policy",
    "seed",
    "max_length",
    "tokenizer",
    "inputs",
    "formats",
    "shard_size",
    "docs_per_unit",
)


class SpecMismatch(FolderInUse):
    """The output folder was made by a run with another policy, seed, tokenizer, ..."""


def spec_dict(spec: ShardIndex) -> dict:
    """The fields of `spec` that decide the output, as JSON."""
    d = spec.as_dict()
    return {k: d[k] for k in SPEC_KEYS}


def claim_folder(out: Path, spec: ShardIndex) -> ShardIndex | None:
    """Prepare `out` for a run with `spec`. Returns the existing index when the
    folder is already complete with the same spec; raises `SpecMismatch` when
    it holds another run's output; removes stale temporary files."""
    mine = spec_dict(spec)
    what = f"{out} holds shards from another run; refusing to mix them"
    if claim_spec(out / INDEX, mine, what, SPEC_KEYS, SpecMismatch, record=False):
        old = json.loads((out / INDEX).read_text())
        return ShardIndex.from_dict(old, where=str(out / INDEX), folder=str(out))
    claim_spec(out / PROGRESS / "run.json", mine, what, SPEC_KEYS, SpecMismatch)
    remove_stale_tmp(out)
    remove_stale_tmp(out / PROGRESS)
    return None


def build_index(spec: ShardIndex, markers, folder: str = "") -> ShardIndex:
    """The complete folder's index from its spec and every unit's marker."""
    markers = sorted(markers, key=lambda m: m.unit)
    return replace(
        spec,
        maskpt_version=__version__,
        units=len(markers),
        counts=merge_counts(m.counts for m in markers),
        shards=tuple(s for m in markers for s in m.shards),
        folder=folder,
    )


def write_index(out: Path, index: ShardIndex) -> None:
    """Write `index.json` (last: the folder is complete once it exists)."""
    write_json_atomic(out / INDEX, index.as_dict())

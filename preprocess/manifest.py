"""The run spec and `index.json`, the manifest of a shard folder.

`index.json` is written last and atomically: its presence means the folder is
complete. It records (format version 1):

    format_version, maskpt_version
    policy: {name, config, target_format}      seed, max_length
    tokenizer: {name, vocab_size, sha256}      (sha256 of its serialized definition)
    inputs: [{path, bytes}]                    formats, shard_size, docs_per_unit
    counts: documents_read, documents_written, skipped_documents{reason: n},
            segments, segments_written, skipped_segments{reason: n},
            tokens_written, masked_tokens, content_tokens, mask_ratio
    shards: [{path, format, unit, examples, tokens, bytes, sha256}]

While a run is going, `_progress/run.json` holds the spec (everything above
that decides the output) and `_progress/<unit>.done` one marker per finished
unit. A run into a folder whose spec differs is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from maskpt import __version__
from maskpt.masking import merge_counts
from preprocess.units import PROGRESS

FORMAT_VERSION = 1
INDEX = "index.json"
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


class SpecMismatch(ValueError):
    """The output folder was made by a run with another policy, seed, tokenizer, ..."""


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _diff(old: dict, new: dict) -> list[str]:
    out = []
    for key in SPEC_KEYS:
        if old.get(key) != new.get(key):
            out.append(
                f"  {key}: folder has {json.dumps(old.get(key))}, this run {json.dumps(new.get(key))}"
            )
    return out


def claim_folder(out: Path, spec: dict) -> dict | None:
    """Prepare `out` for a run with `spec`. Returns the existing index when the
    folder is already complete with the same spec; raises `SpecMismatch` when
    it holds another run's output; removes stale temporary files."""
    out.mkdir(parents=True, exist_ok=True)
    (out / PROGRESS).mkdir(exist_ok=True)
    for existing in (out / INDEX, out / PROGRESS / "run.json"):
        if existing.exists():
            old = json.loads(existing.read_text())
            diff = _diff(old, spec)
            if diff:
                raise SpecMismatch(
                    f"{out} holds shards from another run ({existing.name}); refusing to mix them:\n"
                    + "\n".join(diff)
                    + "\nUse another --output folder, or delete this one to start over."
                )
            if existing.name == INDEX:
                return old
    for stale in [*out.glob(".*.tmp-*"), *(out / PROGRESS).glob(".*.tmp-*")]:
        stale.unlink(missing_ok=True)
    write_json_atomic(out / PROGRESS / "run.json", spec)
    return None


def build_index(spec: dict, markers: list[dict]) -> dict:
    markers = sorted(markers, key=lambda m: m["unit"])
    shards = [s for m in markers for s in m["shards"]]
    return {
        "format_version": FORMAT_VERSION,
        "maskpt_version": __version__,
        **spec,
        "units": len(markers),
        "counts": merge_counts(m["counts"] for m in markers),
        "shards": shards,
    }


def load_index(folder: str | Path) -> dict:
    """The manifest of a complete shard folder; a clear error otherwise."""
    folder = Path(folder)
    path = folder / INDEX
    if not path.exists():
        hint = " (a run is unfinished: _progress/ exists)" if (folder / PROGRESS).exists() else ""
        raise FileNotFoundError(f"{folder} has no {INDEX}: not a complete shard folder{hint}")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if index.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {index.get('format_version')} != {FORMAT_VERSION}"
        )
    return index

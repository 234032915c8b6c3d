"""A preprocessing run's spec, its claim on the output folder, and the
folder's completion: shards moved to their numbered names, the WebDataset
shard list and wids index, and `index.json` last.

While a run is going, `_progress/run.json` holds the spec (everything in
`index.json` that decides the output: policy, seed, max length, tokenizer,
inputs, formats, shard size, units) and `_progress/<unit>.done` one marker
per finished unit (`preprocess/units.py`). A run into a folder whose spec
differs is refused. When every unit is done, `finalize` writes the plan of
moves (`_progress/final.json`), moves each staged shard to
`<format>/shard-<n>.<ext>` (n counting every unit's shards in unit order, so
the numbers have no gaps), writes `webdataset-shards.txt` and
`webdataset-wids.json` when the folder has tars, and `index.json` last: its
presence means the folder is complete. Then `_progress/` is removed (a rerun
removes it when a crash came between). Every step can be redone after a
crash without changing the result. `store_tokenizer` keeps the run's
tokenizer in `tokenizer/` beside the shards.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from maskpt import __version__
from maskpt.core.errors import UserError
from maskpt.core.io import FolderInUse, spec_diff
from maskpt.core.storage import Storage
from maskpt.core.tokenizer import save_tokenizer_files
from preprocess.counts import merge_counts
from preprocess.dedupe import drop_repeats
from preprocess.index import INDEX, PROGRESS, TOKENIZER, ShardIndex
from preprocess.shards import ShardError, shard_name

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
RUN = f"{PROGRESS}/run.json"
PLAN = f"{PROGRESS}/final.json"
WDS_LIST = "webdataset-shards.txt"
WIDS_INDEX = "webdataset-wids.json"
OURS = {INDEX, PROGRESS, TOKENIZER, "arrow", "parquet", "webdataset", WDS_LIST, WIDS_INDEX}


class SpecMismatch(FolderInUse):
    """The output folder was made by a run with another policy, seed, tokenizer, ..."""


class EmptyOutput(UserError, ValueError):
    """Inputs that give no row at all."""


def spec_dict(spec: ShardIndex) -> dict:
    """The fields of `spec` that decide the output, as JSON."""
    d = spec.as_dict()
    return {k: d[k] for k in SPEC_KEYS}


def identity(spec: dict) -> dict:
    """What makes two runs the same run: the spec without where the inputs and
    the tokenizer were found (they are identified by their content's sha256)."""
    out = dict(spec)
    if isinstance(out.get("tokenizer"), dict):
        out["tokenizer"] = {k: v for k, v in out["tokenizer"].items() if k != "name"}
    if isinstance(out.get("inputs"), list):
        out["inputs"] = [{k: v for k, v in i.items() if k != "path"} for i in out["inputs"]]
    return out


def _refuse_other(storage: Storage, rel: str, mine: dict) -> dict | None:
    """The JSON at `rel` (None when absent); `SpecMismatch` when its spec differs."""
    if not storage.exists(rel):
        return None
    old = storage.read_json(rel)
    diff = spec_diff(identity(old), identity(mine), SPEC_KEYS)
    if diff:
        raise SpecMismatch(
            f"{storage.root_url} holds shards from another run ({rel}); refusing to mix them:\n"
            + "\n".join(diff)
            + "\nUse another --output folder, or delete this one to start over."
        )
    return old


def claim_folder(storage: Storage, spec: ShardIndex) -> ShardIndex | None:
    """Prepare the folder for a run with `spec`. Returns the existing index when
    the folder is already complete with the same spec; raises `SpecMismatch`
    when it holds another run's output, or files of something else; removes
    stale temporary files."""
    mine = spec_dict(spec)
    old = _refuse_other(storage, INDEX, mine)
    if old is not None:
        storage.remove_tree(PROGRESS)  # left when a crash came between index.json and cleanup
        return ShardIndex.from_dict(old, where=storage.url(INDEX), folder=storage.root_url)
    others = [n for n in storage.listdir() if n not in OURS and not n.startswith(".")]
    if others and not storage.exists(RUN):
        raise FolderInUse(
            f"{storage.root_url} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
            "and holds no shard run; give an empty or new --output folder"
        )
    if _refuse_other(storage, RUN, mine) is None:
        storage.makedirs(PROGRESS)
        storage.write_json(RUN, mine)
    for rel in ("", PROGRESS, f"{PROGRESS}/units"):
        storage.remove_stale_tmp(rel)
    return None


def plan_moves(markers) -> dict[str, str]:
    """Staged shard path -> its numbered name, every unit's shards in unit order."""
    moves: dict[str, str] = {}
    stems: dict[str, int] = {}
    for m in sorted(markers, key=lambda m: m.unit):
        for s in m.shards:
            stem = s.path.rsplit(".", 1)[0]
            number = stems.setdefault(stem, len(stems))
            moves[s.path] = shard_name(s.format, number)
    return moves


def planned_moves(storage: Storage) -> dict[str, str]:
    """The moves of an interrupted `finalize` (empty when none began)."""
    return storage.read_json(PLAN) if storage.exists(PLAN) else {}


def finalize(storage: Storage, spec: ShardIndex, markers) -> ShardIndex:
    """Move the staged shards to their numbered names, write the WebDataset
    lists, then index.json (last); return the index."""

    markers = drop_repeats(storage, markers, spec.formats, spec.shard_size)
    if not any(m.counts.segments_written for m in markers):
        c = merge_counts(m.counts for m in markers)
        raise EmptyOutput(
            f"{storage.root_url}: nothing to write: {c.documents_read} documents read, none "
            f"written (skipped: {dict(c.skipped_documents) or 'none'}; segments skipped: "
            f"{dict(c.skipped_segments) or 'none'}); no index.json was written"
        )
    moves = plan_moves(markers)
    storage.write_json(PLAN, moves)
    for fmt in spec.formats:
        storage.makedirs(fmt)
    for src, dst in moves.items():
        if storage.exists(src):
            storage.move(src, dst)
        elif not storage.exists(dst):
            raise ShardError(f"{storage.url(src)}: a finished unit's shard is missing")
    shards = tuple(replace(s, path=moves[s.path]) for m in markers for s in m.shards)
    index = replace(
        spec,
        maskpt_version=__version__,
        units=len(markers),
        counts=merge_counts(m.counts for m in markers),
        shards=shards,
        folder=storage.root_url,
    )
    if "webdataset" in spec.formats:
        tars = index.shards_of("webdataset")
        storage.write_bytes(WDS_LIST, "".join(f"{s.path}\n" for s in tars).encode())
        storage.write_json(
            WIDS_INDEX,
            {
                "__kind__": "wids-shard-index-v1",
                "wids_version": 1,
                "name": spec.policy.name,
                "shardlist": [{"url": s.path, "nsamples": s.examples} for s in tars],
            },
        )
    storage.write_json(INDEX, index.as_dict())  # last: the folder is complete
    storage.remove_tree(PROGRESS)
    return index


def store_tokenizer(storage: Storage, tokenizer) -> None:
    """Save `tokenizer` (`save_pretrained`) into the folder's `tokenizer/`,
    each file whole or not at all; the same files on a rerun."""

    with tempfile.TemporaryDirectory(prefix="maskpt-tokenizer-") as tmp:
        save_tokenizer_files(tokenizer, tmp)
        for f in sorted(Path(tmp).iterdir()):
            storage.write_bytes(f"{TOKENIZER}/{f.name}", f.read_bytes())

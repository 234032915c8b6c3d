"""Shard files: the rows of masked segments, as Arrow IPC and WebDataset tar.

On-disk layout of one shard (both formats hold the same rows, in the same order):

    part-<unit>-<k>.arrow   Arrow IPC *file* format, one record batch; columns
                            id: string, doc_id: string,
                            input_ids / source_ids / target_ids: list<int32>,
                            mask: list<bool> (Arrow stores it as packed bits)
    part-<unit>-<k>.tar     WebDataset tar: per row, members sharing the key
                            "%08d" (row number in the shard):
                              <key>.json            {"id": ..., "doc_id": ...}
                              <key>.input_ids.npy   int32 .npy (no pickle)
                              <key>.source_ids.npy  int32
                              <key>.target_ids.npy  int32
                              <key>.mask.npy        bool
                            tar members have mtime 0 and uid/gid 0, so the same
                            rows give the same bytes.

Nothing in a shard is pickled; readers load `.npy` with `allow_pickle=False`
and `check_rows` validates lengths and token-id ranges before anyone trains
on them.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from maskpt.core.errors import UserError
from maskpt.core.io import atomic_write, sha256_file
from preprocess.index import ShardEntry

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("doc_id", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("source_ids", pa.list_(pa.int32())),
        ("target_ids", pa.list_(pa.int32())),
        ("mask", pa.list_(pa.bool_())),
    ]
)
ID_FIELDS = ("input_ids", "source_ids", "target_ids")
FORMATS = {"arrow": ".arrow", "webdataset": ".tar"}


class ShardError(UserError, ValueError):
    """A shard that is missing, corrupt or inconsistent; the message names it."""


def row_of(ex) -> dict:
    """The shard row of a `MaskedSegment`."""
    return {
        "id": ex.id,
        "doc_id": ex.doc_id,
        "input_ids": list(ex.input_ids),
        "source_ids": list(ex.source_ids),
        "target_ids": list(ex.target_ids),
        "mask": [bool(m) for m in ex.mask],
    }


def write_arrow(path: Path, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)

    def write(f):
        with pa.ipc.new_file(f, SCHEMA) as writer:
            writer.write_table(table)

    atomic_write(path, write)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def write_tar(path: Path, rows: list[dict]) -> None:
    def member(tar, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    def write(f):
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for k, row in enumerate(rows):
                key = f"{k:08d}"
                meta = json.dumps({"id": row["id"], "doc_id": row["doc_id"]}, sort_keys=True)
                member(tar, f"{key}.json", meta.encode())
                for field in ID_FIELDS:
                    member(tar, f"{key}.{field}.npy", _npy(np.asarray(row[field], dtype=np.int32)))
                member(tar, f"{key}.mask.npy", _npy(np.asarray(row["mask"], dtype=bool)))

    atomic_write(path, write)


def write_shard(path_stem: Path, fmt: str, rows: list[dict], unit: str) -> ShardEntry:
    """Write one shard; return its manifest entry (path relative to the folder)."""
    path = path_stem.with_suffix(FORMATS[fmt])
    (write_arrow if fmt == "arrow" else write_tar)(path, rows)
    return ShardEntry(
        path=path.name,
        format=fmt,
        unit=unit,
        examples=len(rows),
        tokens=sum(len(r["input_ids"]) for r in rows),
        bytes=path.stat().st_size,
        sha256=sha256_file(path),
    )


# --- reading -------------------------------------------------------------------


def read_arrow(path: str | Path) -> Iterator[dict]:
    try:
        with pa.memory_map(str(path), "r") as src:
            reader = pa.ipc.open_file(src)
            if not reader.schema.equals(SCHEMA):
                raise ShardError(f"{path}: schema {reader.schema} is not the shard schema")
            for i in range(reader.num_record_batches):
                yield from reader.get_batch(i).to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ShardError(f"{path}: not a readable Arrow IPC file: {exc}") from exc


def read_tar(path: str | Path, fileobj=None) -> Iterator[dict]:
    """Rows of a WebDataset tar shard, from `path` or an open binary `fileobj`
    (e.g. an fsspec file; `path` then only names it in errors)."""
    fields = ("json", *(f"{f}.npy" for f in ID_FIELDS), "mask.npy")
    try:
        with tarfile.open(None if fileobj is not None else path, mode="r:", fileobj=fileobj) as tar:
            row: dict = {}
            key = None
            for m in tar:
                k, _, ext = m.name.partition(".")
                if key is not None and k != key:
                    yield _tar_row(path, key, row, fields)
                    row = {}
                key = k
                data = tar.extractfile(m)
                if data is None:
                    raise ShardError(f"{path}: member {m.name} is not a file")
                row[ext] = data.read()
            if key is not None:
                yield _tar_row(path, key, row, fields)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardError(f"{path}: not a readable tar file: {exc}") from exc


def _tar_row(path, key: str, parts: dict, fields) -> dict:
    missing = [f for f in fields if f not in parts]
    if missing:
        raise ShardError(f"{path}: row {key} lacks {', '.join(missing)}")
    try:
        meta = json.loads(parts["json"])
        row = {"id": meta["id"], "doc_id": meta["doc_id"]}
        for f in ID_FIELDS:
            row[f] = (
                np.load(io.BytesIO(parts[f"{f}.npy"]), allow_pickle=False).astype(np.int64).tolist()
            )
        row["mask"] = (
            np.load(io.BytesIO(parts["mask.npy"]), allow_pickle=False).astype(bool).tolist()
        )
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ShardError(f"{path}: row {key} does not decode: {exc}") from exc
    return row


def read_shard(path: str | Path) -> Iterator[dict]:
    return read_tar(path) if str(path).endswith(".tar") else read_arrow(path)


def check_row(row: dict, vocab_size: int, max_length: int) -> str | None:
    """Why a row is unusable, or None. Checks lengths and id ranges."""
    n = len(row["input_ids"])
    if len(row["mask"]) != n:
        return f"mask has {len(row['mask'])} entries for {n} input tokens"
    for f in ID_FIELDS:
        ids = row[f]
        if not ids:
            return f"{f} is empty"
        if len(ids) > max_length + 64:
            return f"{f} has {len(ids)} tokens (max_length {max_length})"
        lo, hi = min(ids), max(ids)
        if lo < 0 or hi >= vocab_size:
            return f"{f} has token id {lo if lo < 0 else hi} outside [0, {vocab_size})"
    if n > max_length:
        return f"input_ids has {n} tokens > max_length {max_length}"
    return None

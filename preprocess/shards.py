"""Shard files (format 2): the rows of masked segments, in the formats other
tools read without maskpt's code.

A row, with the names a Hugging Face user expects:

    id            string        the segment id, "{doc_id}-{n}", unique in the folder
    doc_id        string
    input_ids     list<int32>   what the model takes: the masked sequence (<s> ... </s>)
    labels        list<int32>   what the model must produce (full sequence or the spans)
    original_ids  list<int32>   the unmasked tokens of the segment
    masked        list<bool>    per original token: was it masked
    word_starts   list<bool>    per original token: begins a word     } the annotation:
    sentence_starts list<bool>  per original token: begins a sentence } what a policy's
    spans         list<int32>   token ranges [s0, e0, s1, e1, ...]    } draw reads to mask
    token_probs   list<uint16>  per original token, in thousandths    } again each epoch

`input_ids`, `labels` and `masked` are epoch 0's draw, so the rows train
as they are; the annotation lets the trainer draw every epoch anew
(`preprocess/remask.py`). `spans` holds ssm_v1's salient entities or sup_v1's
ranked candidates, `token_probs` meta_v1's mask probabilities; empty when the
folder's policy makes none (index.json lists the annotation kinds). No
`attention_mask`: it would be all ones; collators make it when they pad.

Formats (each in its own subfolder of the shard folder, numbered
`shard-000000`, `shard-000001`, ... without gaps, the same rows under the same
number in every format):

    arrow/shard-N.arrow        Arrow IPC *stream* format, one record batch: what
                               `datasets.Dataset.from_file` memory-maps and
                               `pyarrow.ipc.open_stream` reads
    parquet/shard-N.parquet    Parquet (zstd): `pyarrow.dataset`, Ray `read_parquet`,
                               `datasets.load_dataset("parquet")`, DuckDB, Spark
    webdataset/shard-N.tar     WebDataset tar: one `<key>.json` member per row holding
                               the whole row; `__key__` is the row id made key-safe
                               (`key_of`); written with webdataset's TarWriter with a
                               fixed mtime, so the same rows give the same bytes

Nothing in a shard is pickled; `check_row` validates lengths and token-id
ranges before anyone trains on a row.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import urllib.parse
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from maskpt.core.errors import UserError
from maskpt.core.records import MaskedSegment, Segment
from policies.base import Annotation
from preprocess.index import ShardEntry

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("doc_id", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("original_ids", pa.list_(pa.int32())),
        ("masked", pa.list_(pa.bool_())),
        ("word_starts", pa.list_(pa.bool_())),
        ("sentence_starts", pa.list_(pa.bool_())),
        ("spans", pa.list_(pa.int32())),
        ("token_probs", pa.list_(pa.uint16())),
    ]
)
TOKEN_FIELDS = ("input_ids", "labels", "original_ids")
FORMATS = {"arrow": ".arrow", "parquet": ".parquet", "webdataset": ".tar"}


class ShardError(UserError, ValueError):
    """A shard that is missing, corrupt or inconsistent; the message names it."""


# --- the codec: a row from a masked segment and its annotation, and back ---------------

LIST_COLUMNS = tuple(f.name for f in SCHEMA if pa.types.is_list(f.type))
"""The columns that hold one value per token (or per span end): readers slice these."""


def row_of(ex, ann) -> dict:
    """The shard row of a `MaskedSegment` (epoch 0) and its `Annotation`."""
    return {
        "id": ex.id,
        "doc_id": ex.doc_id,
        **drawn_fields(ex),
        "original_ids": list(ex.input_ids),
        "word_starts": [bool(b) for b in ann.word_starts],
        "sentence_starts": [bool(b) for b in ann.sentence_starts],
        "spans": [i for span in ann.spans for i in span],
        "token_probs": [int(p) for p in ann.token_probs],
    }


def drawn_fields(ex) -> dict:
    """The fields of a row that a draw decides."""
    return {
        "input_ids": list(ex.source_ids),
        "labels": list(ex.target_ids),
        "masked": list(map(bool, ex.mask)),
    }


def annotation_of(row: dict) -> Annotation:
    """The `Annotation` a row stores: what a policy's draw reads to mask it again."""
    spans = row["spans"]
    return Annotation(
        tuple(row["word_starts"]),
        tuple(row["sentence_starts"]),
        tuple(zip(spans[::2], spans[1::2], strict=True)),
        tuple(row["token_probs"]),
    )


def segment_of(row: dict) -> Segment:
    """The row's unmasked `Segment`: its tokens and word ids (no text: draws need none)."""
    n = len(row["original_ids"])
    word_ids = Annotation(tuple(row["word_starts"]), ()).word_ids
    return Segment(
        row["id"], row["doc_id"], "", tuple(row["original_ids"]), word_ids, ((0, 0),) * n
    )


def masked_of(row: dict, target_format: str, policy: str = "") -> MaskedSegment:
    """The row's stored draw (epoch 0's, or an epoch's from `Remasker.draw`) as a
    `MaskedSegment`, for showing it."""
    return MaskedSegment(
        segment_of(row),
        tuple(row["input_ids"]),
        tuple(row["labels"]),
        tuple(bool(m) for m in row["masked"]),
        target_format,
        policy,
    )


def key_of(row_id: str) -> str:
    """A WebDataset `__key__` for a row id: letters, digits, `-` and `_` kept,
    every other character percent-encoded (so no `.` or `/` splits the key,
    and different ids stay different keys)."""
    return urllib.parse.quote(row_id, safe="-_").replace(".", "%2E").replace("~", "%7E")


def shard_name(fmt: str, number: int) -> str:
    """The path of shard `number` of format `fmt`, relative to the folder."""
    return f"{fmt}/shard-{number:06d}{FORMATS[fmt]}"


# --- writing ---------------------------------------------------------------------------


def _arrow(f, rows: list[dict]) -> None:
    with pa.ipc.new_stream(f, SCHEMA) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))


def _parquet(f, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), f, compression="zstd")


def _tar(f, rows: list[dict]) -> None:
    from webdataset import TarWriter

    with TarWriter(f, encoder=False, mtime=0) as sink:  # an int: a float mtime adds PAX headers
        for row in rows:
            body = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            sink.write({"__key__": key_of(row["id"]), "json": body})


WRITERS = {"arrow": _arrow, "parquet": _parquet, "webdataset": _tar}


def write_shard(storage, rel: str, fmt: str, rows: list[dict], unit: str) -> ShardEntry:
    """Write one shard of `rows` at `rel` in `storage`; return its manifest entry."""
    storage.write(rel, lambda f: WRITERS[fmt](f, rows))
    return ShardEntry(
        path=rel,
        format=fmt,
        unit=unit,
        examples=len(rows),
        tokens=sum(len(r["original_ids"]) for r in rows),
        bytes=storage.size(rel),
        sha256=storage.sha256(rel),
    )


# --- reading ---------------------------------------------------------------------------


def read_table(storage, rel: str, fmt: str) -> pa.Table:
    """A whole shard as an Arrow table with `SCHEMA` (memory-mapped for local
    Arrow files); `ShardError` naming the file when it cannot be read."""
    where = storage.url(rel)
    try:
        if fmt == "arrow" and storage.local:
            table = pa.ipc.open_stream(pa.memory_map(storage.path(rel), "r")).read_all()
        elif fmt == "arrow":
            table = pa.ipc.open_stream(pa.py_buffer(storage.read_bytes(rel))).read_all()
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(storage.read_bytes(rel)))
        else:
            table = pa.Table.from_pylist(list(read_tar(storage, rel)), schema=SCHEMA)
    except (OSError, pa.ArrowException) as exc:
        raise ShardError(f"{where}: not a readable {fmt} shard: {exc}") from exc
    if not table.schema.equals(SCHEMA):
        raise ShardError(f"{where}: schema {table.schema} is not the shard schema")
    return table


def read_rows(storage, rel: str, fmt: str) -> Iterator[dict]:
    """The rows of one shard, in order."""
    if fmt == "webdataset":
        yield from read_tar(storage, rel)
        return
    table = read_table(storage, rel, fmt)
    start = 0
    for batch in table.to_batches(max_chunksize=1024):
        try:
            rows = batch.to_pylist()
        except (UnicodeDecodeError, pa.ArrowException):
            for i in range(batch.num_rows):  # find the row that does not decode
                try:
                    batch.slice(i, 1).to_pylist()
                except (UnicodeDecodeError, pa.ArrowException) as exc:
                    raise ShardError(
                        f"{storage.url(rel)}: row {start + i} does not decode: {exc}"
                    ) from exc
            raise
        yield from rows
        start += batch.num_rows


def read_tar(storage, rel: str) -> Iterator[dict]:
    """Rows of a WebDataset tar shard, checked against their keys."""

    where = storage.url(rel)
    try:
        with storage.open(rel) as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for m in tar:
                key, _, ext = posixpath.basename(m.name).partition(".")
                data = tar.extractfile(m)
                if ext != "json" or data is None:
                    raise ShardError(f"{where}: unexpected member {m.name}")
                yield _tar_row(where, key, data.read())
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardError(f"{where}: not a readable tar file: {exc}") from exc


def _tar_row(where: str, key: str, data: bytes) -> dict:
    try:
        row = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{where}: row {key} does not decode: {exc}") from exc
    if not isinstance(row, dict) or set(row) != set(SCHEMA.names):
        raise ShardError(f"{where}: row {key} lacks the shard fields {SCHEMA.names}")
    if key_of(str(row["id"])) != key:
        raise ShardError(f"{where}: row {key} holds id {row['id']!r}, whose key differs")
    return {name: row[name] for name in SCHEMA.names}


def check_row(row: dict, vocab_size: int, max_length: int) -> str | None:
    """Why a row is unusable, or None. Checks lengths and id ranges."""
    n = len(row["original_ids"])
    for f in ("masked", "word_starts", "sentence_starts"):
        if len(row[f]) != n:
            return f"{f} has {len(row[f])} entries for {n} original tokens"
    if row["token_probs"] and len(row["token_probs"]) != n:
        return f"token_probs has {len(row['token_probs'])} entries for {n} original tokens"
    spans = row["spans"]
    if len(spans) % 2 or any(
        not 0 < s < e < n for s, e in zip(spans[::2], spans[1::2], strict=False)
    ):
        return f"spans {spans[:8]} are not token ranges inside the row"
    for f in TOKEN_FIELDS:
        ids = row[f]
        if not ids:
            return f"{f} is empty"
        if len(ids) > max_length + 64:
            return f"{f} has {len(ids)} tokens (max_length {max_length})"
        lo, hi = min(ids), max(ids)
        if lo < 0 or hi >= vocab_size:
            return f"{f} has token id {lo if lo < 0 else hi} outside [0, {vocab_size})"
    if n > max_length:
        return f"original_ids has {n} tokens > max_length {max_length}"
    return None

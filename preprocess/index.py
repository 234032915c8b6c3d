"""`index.json`, the manifest of a shard folder, as one typed object.

Every reader of a shard folder (the trainer, `maskpt inspect`, `maskpt
analyze`, the tests) loads it with `load_index`, which reads it through
fsspec (a local path or any URL), refuses a `format_version` it does not
know by name (format 1, the layout before shard format 2, with a hint on how
to rewrite it), and checks every field's type. The JSON layout (format 2):

    format_version, maskpt_version
    policy: {name, config, target_format[, checkpoint_sha256]}
    seed, max_length, formats, shard_size, docs_per_unit, units
    annotations: [kind, ...]                   what the rows' annotation holds
    tokenizer: {name, vocab_size, sha256}      (sha256 of its serialized definition; name:
                                               the hub id, or a local folder's name)
    inputs: [{path, bytes, sha256}]            (path: a URL, or a local file's name)
    counts: documents_read, documents_written, skipped_documents{reason: n},
            segments, segments_written, skipped_segments{reason: n},
            tokens_written, masked_tokens, content_tokens, mask_ratio
    shards: [{path, format, unit, examples, tokens, bytes, sha256}]
            (path relative to the folder: arrow/shard-000000.arrow, ...)
    checksum                                   sha256 of all the above (canonical JSON):
                                               a changed or torn index.json is refused

The tokenizer itself is stored beside it, in `tokenizer/` (`save_pretrained`;
`tokenizer_source` finds it), so a folder copied to another machine or an
object store carries what its token ids mean. `index.json` is written last
and atomically (`preprocess/manifest.py`): its presence means the folder is
complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from maskpt.core.config import ConfigError, build_dataclass
from maskpt.core.errors import InputNotFound, UserError
from maskpt.core.io import atomic_write
from maskpt.core.storage import Storage
from preprocess.counts import Counts

FORMAT_VERSION = 2
INDEX = "index.json"
PROGRESS = "_progress"
TOKENIZER = "tokenizer"
READ_PREFERENCE = ("arrow", "parquet", "webdataset")
"""The format readers use when a folder has several."""
FORMAT_1_HINT = (
    "it is a format-1 shard folder (maskpt 0.1: Arrow IPC file shards with source_ids/"
    "target_ids), which this version does not read; rewrite it by running `maskpt "
    "preprocess` again with the same inputs and settings into a new --output: the masks "
    "come out the same (they are a pure function of the seed and the segment ids), under "
    "the new column names"
)


class ShardIndexError(UserError, ValueError):
    """An index.json that cannot be used; the message names the file."""


@dataclass(frozen=True)
class ShardEntry:
    path: str
    """File name relative to the folder."""
    format: str
    """arrow or webdataset."""
    unit: str
    """The unit of work that wrote it."""
    examples: int
    """Rows in the shard."""
    tokens: int
    """Input tokens of its rows."""
    bytes: int
    """File size."""
    sha256: str
    """Checksum of the file."""

    @property
    def stem(self) -> str:
        """The file name without folder and extension (shard-000003): the same
        for the same rows in every format."""
        return self.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    target_format: str = "span"
    checkpoint_sha256: str = ""
    """Learned policies: sha256 of the checkpoint folder's weights and metadata."""

    def as_dict(self) -> dict:
        d = asdict(self)
        if not self.checkpoint_sha256:
            d.pop("checkpoint_sha256")
        return d


@dataclass(frozen=True)
class TokenizerRef:
    name: str
    vocab_size: int
    sha256: str


@dataclass(frozen=True)
class InputRef:
    path: str
    """The URL of a remote input, the file name of a local one (the folder it
    was read from is the driver's business); not part of its identity."""
    bytes: int
    sha256: str
    """sha256 of the whole file: an input is identified by its content."""


@dataclass(frozen=True)
class ShardIndex:
    """A complete shard folder's manifest. `folder` is where it was loaded
    from (not stored)."""

    policy: PolicyInfo
    seed: int
    max_length: int
    tokenizer: TokenizerRef
    inputs: tuple[InputRef, ...]
    formats: tuple[str, ...]
    shard_size: int
    docs_per_unit: int
    annotations: tuple[str, ...] = ()
    """Annotation kinds the rows carry (words, sentences, entities, ranked_spans,
    token_probs): which policies can be drawn from the folder (preprocess/remask.py)."""
    units: int = 0
    counts: Counts = field(default_factory=Counts)
    shards: tuple[ShardEntry, ...] = ()
    format_version: int = FORMAT_VERSION
    maskpt_version: str = ""
    folder: str = field(default="", compare=False)

    @property
    def primary_format(self) -> str:
        """The format readers use: the first of arrow, parquet, webdataset it has."""
        return next(f for f in READ_PREFERENCE if f in self.formats)

    def shards_of(self, fmt: str | None = None) -> list[ShardEntry]:
        fmt = fmt or self.primary_format
        return [s for s in self.shards if s.format == fmt]

    @property
    def examples(self) -> int:
        return sum(s.examples for s in self.shards_of())

    def as_dict(self) -> dict:
        d = {
            "format_version": self.format_version,
            "maskpt_version": self.maskpt_version,
            "policy": self.policy.as_dict(),
            "seed": self.seed,
            "max_length": self.max_length,
            "tokenizer": asdict(self.tokenizer),
            "inputs": [asdict(i) for i in self.inputs],
            "formats": list(self.formats),
            "shard_size": self.shard_size,
            "docs_per_unit": self.docs_per_unit,
            "annotations": list(self.annotations),
            "units": self.units,
            "counts": self.counts.as_dict(),
            "shards": [asdict(s) for s in self.shards],
        }
        d["checksum"] = checksum(d)
        return d

    @classmethod
    def from_dict(cls, data: dict, where: str = INDEX, folder: str = "") -> ShardIndex:
        """Check the format version, then every field; errors name `where`."""
        if not isinstance(data, dict):
            raise ShardIndexError(f"{where}: not a JSON object")
        version = data.get("format_version")
        if version == 1:
            raise ShardIndexError(f"{where}: {FORMAT_1_HINT}")
        if version != FORMAT_VERSION:
            raise ShardIndexError(
                f"{where}: shard format_version {version!r} is not the one this maskpt reads "
                f"({FORMAT_VERSION}); rewrite the folder with this version's `maskpt preprocess`"
            )
        data = dict(data)
        stored = data.pop("checksum", None)
        if stored != checksum(data):
            raise ShardIndexError(
                f"{where}: its checksum does not match its content: index.json was changed "
                "after `maskpt preprocess` wrote it (or is torn); rewrite the folder"
            )
        try:
            counts = Counts.from_dict(data.pop("counts"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ShardIndexError(f"{where}: counts are malformed ({exc!r})") from None
        try:
            index = build_dataclass(cls, data, where=where)
        except ConfigError as exc:
            raise ShardIndexError(f"malformed {exc}") from None
        object.__setattr__(index, "counts", counts)
        object.__setattr__(index, "folder", folder)
        return index


def checksum(d: dict) -> str:
    """sha256 of an index dict's canonical JSON (without its own checksum)."""

    body = {k: v for k, v in d.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def load_index(folder) -> ShardIndex:
    """The manifest of a complete shard folder (local path or fsspec URL);
    a one-line error naming the folder otherwise."""
    storage = folder if isinstance(folder, Storage) else Storage(str(folder))
    where = storage.url(INDEX)
    if not storage.exists():
        raise InputNotFound(f"{storage.root_url}: no such shard folder")
    try:
        raw = storage.read_bytes(INDEX)
    except FileNotFoundError:
        hint = (
            " (a run is unfinished: _progress/ exists; rerun `maskpt preprocess` to finish it)"
            if storage.exists(PROGRESS)
            else " (not a folder written by `maskpt preprocess`)"
        )
        raise ShardIndexError(
            f"{storage.root_url} has no {INDEX}: not a complete shard folder{hint}"
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardIndexError(f"{where}: not valid JSON: {exc}") from None
    return ShardIndex.from_dict(data, where=where, folder=storage.root_url)


def tokenizer_source(index: ShardIndex) -> str:
    """Where to load the folder's tokenizer from: its stored copy (fetched once
    into the temporary folder, under its fingerprint, when the shard folder is
    remote), else, for folders written before the copy was kept, the name the
    index records."""
    storage = Storage(index.folder) if index.folder else None
    if storage is None or not storage.exists(f"{TOKENIZER}/tokenizer.json"):
        return index.tokenizer.name
    if storage.local:
        return storage.path(TOKENIZER)
    local = os.path.join(tempfile.gettempdir(), f"maskpt-tokenizer-{index.tokenizer.sha256[:16]}")
    for name in storage.listdir(TOKENIZER):
        if not os.path.exists(os.path.join(local, name)):
            os.makedirs(local, exist_ok=True)
            data = storage.read_bytes(f"{TOKENIZER}/{name}")
            atomic_write(os.path.join(local, name), lambda f, data=data: f.write(data))
    return local

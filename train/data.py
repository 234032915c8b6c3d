"""Streaming pre-training data from shard folders, exactly once per epoch,
with exact resume.

The data is one deterministic *stream*: position p of source s is example
`order_s(epoch)[p mod N_s]` of epoch p // N_s, where `order_s(epoch)` shuffles
the shard order and the rows inside each shard from (seed, epoch). Several
folders are interleaved by weight with a deterministic schedule, each keeping
its own epochs. Global batch number g of the stream is cut into
world_size x micro-batches: rank r takes micro-batch r of each micro-step, and
dataloader worker w of that rank takes every W-th of the rank's micro-batches,
so PyTorch's round-robin over workers yields them in order. Every example is
seen exactly once per epoch across ranks and workers (nothing dropped, nothing
padded), and the state is one number: how many micro-steps the job consumed.

Shards are read in the folder's first format of arrow (memory-mapped when
local), parquet and webdataset, through fsspec for any URL. The folder's
index.json must exist (a complete folder, shard format 2), its shards must
match their sizes and checksums, and its tokenizer must be the model's. The
model input is `input_ids`, the target `labels`: stored (epoch 0 for every
epoch), or drawn anew for each example's epoch from the row's annotation by
the source's `Remasker` (the folder's policy, another, or a mixture) — a pure
function of (row, policy, seed, epoch), so exact resume still holds.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import torch

from maskpt.core.batching import pad_seq2seq
from maskpt.core.errors import UserError
from maskpt.core.seeding import stable_rng
from maskpt.core.storage import Storage
from preprocess.index import ShardEntry, ShardIndex, load_index
from preprocess.remask import Remasker
from preprocess.shards import ShardError, check_row, read_table


class DataError(UserError, ValueError):
    """Shards that cannot be trained on; the message names the folder/shard."""


@dataclass
class Source:
    """One shard folder: its manifest and the rows it holds (loaded lazily)."""

    folder: str
    weight: float
    index: ShardIndex
    shards: list[ShardEntry]
    remasker: Remasker | None = None
    """Draws each example's mask for its epoch (None: the stored epoch-0 masks)."""

    @property
    def index_checksum(self) -> str:
        """The folder's identity: its index.json checksum (content, not path)."""
        return self.index.as_dict()["checksum"]

    @property
    def storage(self) -> Storage:
        return Storage(self.folder)

    @property
    def size(self) -> int:
        return sum(s.examples for s in self.shards)


def open_source(
    folder: str,
    weight: float = 1.0,
    tokenizer_sha256: str | None = None,
    verify: bool = True,
    verify_part: tuple[int, int] = (0, 1),
) -> Source:
    """Open a complete shard folder. With `verify`, every shard must exist and
    shard i's size and sha256 are checked when i % parts == part, so ranks
    (`verify_part=(rank, world)`) share the hashing instead of repeating it."""
    folder = str(folder)
    storage = Storage(folder)
    index = load_index(storage)
    tok = index.tokenizer
    if tokenizer_sha256 is not None and tok.sha256 != tokenizer_sha256:
        raise DataError(
            f"{folder}: shards were made with tokenizer {tok.name!r} "
            f"(sha256 {tok.sha256[:12]}), the model uses another "
            f"(sha256 {tokenizer_sha256[:12]}); re-run preprocessing with the model's tokenizer"
        )
    shards = index.shards_of()
    if not shards:
        raise DataError(f"{folder}: index.json lists no shards")
    if verify:
        part, parts = verify_part
        for i, s in enumerate(shards):
            if not storage.exists(s.path):
                raise DataError(f"{storage.url(s.path)}: shard listed in index.json is missing")
            if i % parts != part:
                continue
            if storage.size(s.path) != s.bytes or storage.sha256(s.path) != s.sha256:
                raise DataError(
                    f"{storage.url(s.path)}: size or sha256 differs from index.json (corrupted)"
                )
    if weight <= 0:
        raise DataError(f"{folder}: weight must be > 0, got {weight}")
    return Source(folder, weight, index, shards)


LIST_COLUMNS = ("input_ids", "labels", "original_ids", "masked", "word_starts",
                "sentence_starts", "spans", "token_probs")  # fmt: skip


class ShardRows:
    """Random access to the rows of one shard table: the list columns as
    (offsets, values) numpy views of the Arrow buffers (no copy for a
    memory-mapped Arrow stream), so a row costs a few slices."""

    def __init__(self, table):
        self.ids = table.column("id").to_pylist()
        self.doc_ids = table.column("doc_id").to_pylist()
        self.lists = {}
        for name in LIST_COLUMNS:
            arr = table.column(name).combine_chunks()
            offsets = arr.offsets.to_numpy()
            values = arr.values.to_numpy(zero_copy_only=False)
            self.lists[name] = (offsets, values)

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, i: int) -> dict:
        out = {"id": self.ids[i], "doc_id": self.doc_ids[i]}
        for name, (offsets, values) in self.lists.items():
            out[name] = values[offsets[i] : offsets[i + 1]].tolist()
        return out


class ShardStream:
    """Random access to the shuffled example stream of one source."""

    def __init__(self, src: Source, seed: int, shuffle: bool = True):
        self.src, self.seed, self.shuffle = src, seed, shuffle
        self.storage = src.storage
        self._epoch = None
        self._table_cache: dict[str, object] = {}
        self._rows_perm: tuple = (None, None)

    def _epoch_order(self, epoch: int):
        if self._epoch == epoch:
            return self._order
        shards = list(self.src.shards)
        if self.shuffle:
            rng = stable_rng(self.seed, "shards", epoch)
            shards = [shards[i] for i in rng.permutation(len(shards))]
        cum = np.cumsum([s.examples for s in shards]).tolist()
        self._epoch, self._order = epoch, (shards, cum)
        return self._order

    def _rows(self, shard: ShardEntry) -> ShardRows:
        """The shard's rows (one shard in memory at a time): Arrow streams
        memory-mapped when local, Parquet and WebDataset decoded whole."""
        rows = self._table_cache.get(shard.path)
        if rows is None:
            try:
                rows = ShardRows(read_table(self.storage, shard.path, shard.format))
            except (ShardError, UnicodeDecodeError) as exc:
                raise DataError(
                    f"{self.storage.url(shard.path)}: cannot read shard: {exc}"
                ) from exc
            if len(rows) != shard.examples:  # trust the shard, not the manifest
                raise DataError(
                    f"{self.storage.url(shard.path)}: {len(rows)} rows, index.json says "
                    f"{shard.examples}; the folder is inconsistent (rewrite it)"
                )
            self._table_cache = {shard.path: rows}
        return rows

    def example(self, position: int) -> dict:
        n = self.src.size
        epoch, offset = divmod(position, n)
        shards, cum = self._epoch_order(epoch)
        k = bisect.bisect_right(cum, offset)
        shard = shards[k]
        row_in_shard = offset - (cum[k - 1] if k else 0)
        if self.shuffle:
            stem = shard.stem  # the same order in every format
            key = (epoch, stem)
            if self._rows_perm[0] != key:
                rng = stable_rng(self.seed, "rows", epoch, stem)
                self._rows_perm = (key, rng.permutation(shard.examples))
            row_in_shard = int(self._rows_perm[1][row_in_shard])
        row = self._rows(shard).row(row_in_shard)
        return self.src.remasker.draw(row, epoch) if self.src.remasker else row


class Mixture:
    """Interleaves sources by weight: position p of the mixed stream comes
    from source `pick(p)` (a low-discrepancy schedule: each source gets its
    weight's share of every stretch of positions)."""

    PHI = (math.sqrt(5) - 1) / 2

    def __init__(self, sources: list[Source], seed: int, shuffle: bool = True):
        self.streams = [ShardStream(s, seed, shuffle) for s in sources]
        w = np.array([s.weight for s in sources], dtype=float)
        self.cum = np.cumsum(w / w.sum()).tolist()
        self.cum[-1] = 1.0

    def pick(self, p: int) -> int:
        if len(self.streams) == 1:
            return 0
        return bisect.bisect_right(self.cum, (p * self.PHI) % 1.0)


class PretrainStream(torch.utils.data.IterableDataset):
    """Yields this rank's micro-batches (dicts of lists), in order, forever.

    `state_dict()` / `load_state_dict()` carry the number of micro-steps the
    job has consumed; pass `start_micro_step` after a resume.
    """

    def __init__(
        self,
        sources: list[Source],
        micro_batch: int,
        rank: int,
        world_size: int,
        seed: int = 0,
        shuffle: bool = True,
        vocab_size: int | None = None,
        max_length: int | None = None,
    ):
        self.mix = Mixture(sources, seed, shuffle)
        self.micro, self.rank, self.world = micro_batch, rank, world_size
        self.vocab_size, self.max_length = vocab_size, max_length
        self.micro_steps_done = 0
        self._source_counts = [0] * len(sources)  # positions consumed per source
        self._counted_upto = 0

    # -- state -------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"micro_steps_done": self.micro_steps_done}

    def load_state_dict(self, state: dict) -> None:
        self.micro_steps_done = int(state["micro_steps_done"])

    def advance(self, micro_steps: int = 1) -> None:
        """Called by the trainer after consuming micro-steps (keeps state exact
        even with prefetching workers)."""
        self.micro_steps_done += micro_steps

    # -- positions ---------------------------------------------------------------
    def _source_positions(self, start: int, stop: int) -> list[tuple[int, int]]:
        """(source, position in that source) for mixed positions [start, stop)."""
        if start < self._counted_upto:  # going back (a new iterator): recount
            self._source_counts, self._counted_upto = [0] * len(self.mix.streams), 0
        counts = self._source_counts
        for p in range(self._counted_upto, start):  # per-source offsets before `start`
            counts[self.mix.pick(p)] += 1
        out = []
        for p in range(start, stop):
            s = self.mix.pick(p)
            out.append((s, counts[s]))
            counts[s] += 1
        self._counted_upto = stop
        return out

    def micro_batch(self, micro_step: int) -> list[dict]:
        """The rows of this rank's micro-batch at global micro-step `micro_step`."""
        start = (micro_step * self.world + self.rank) * self.micro
        if len(self.mix.streams) == 1:
            pos = [(0, p) for p in range(start, start + self.micro)]
        else:
            pos = self._source_positions(start, start + self.micro)
        rows = [self.mix.streams[s].example(p) for s, p in pos]
        if self.vocab_size is not None:
            for r in rows:
                why = check_row(r, self.vocab_size, self.max_length or 10**9)
                if why:
                    raise DataError(f"example {r['id']}: {why}")
        return rows

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        step = self.micro_steps_done
        while True:
            if (step - self.micro_steps_done) % nw == wid or nw == 1:
                yield self.micro_batch(step)
            step += 1


def collate(rows: list[dict], pad_id: int) -> dict:
    """Pad a micro-batch: input_ids (+ attention_mask) and labels (-100 padding)."""
    batch = pad_seq2seq([r["input_ids"] for r in rows], [r["labels"] for r in rows], pad_id)
    return {**batch, "ids": [r["id"] for r in rows]}

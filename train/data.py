"""Streaming pre-training data from shard folders, exactly once per epoch,
with exact resume.

The data is one deterministic *stream*: position p of source s is example
`order_s(epoch)[p mod N_s]` of epoch p // N_s, where `order_s(epoch)` shuffles
the shard order and the rows inside each shard from (seed, epoch). Several
folders are interleaved by weight with a deterministic schedule, each keeping
its own epochs. Global batch number g of the stream is cut into
world_size x micro-batches: rank r takes micro-batch r of each micro-step, and
dataloader worker w of that rank takes every W-th of the rank's micro-batches,
so PyTorch's round-robin over workers yields them in order. With length
bucketing (`data.bucket`) a global batch's positions are first sorted by
their stored lengths, then cut the same way (`train/batches.py`). Every
example is seen exactly once per epoch across ranks and workers (nothing
dropped, nothing padded), and the state is one number: how many micro-steps
the job consumed. The workers also collate: what reaches the training
process is three tensors and a few counts per micro-batch.

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
import os
from dataclasses import dataclass

import numpy as np
import torch

from maskpt.core.errors import UserError
from maskpt.core.seeding import stable_rng
from maskpt.core.storage import Storage
from preprocess.index import ShardEntry, ShardIndex, load_index
from preprocess.remask import Remasker
from preprocess.shards import LIST_COLUMNS, ShardError, check_row, read_table
from train.batches import bucket_plan, collate_micro


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
    verify: bool = True
    """Check each shard against index.json each time it is opened (`ShardStream._check`)."""

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
    return Source(folder, weight, index, shards, verify=verify)


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

    def stored_length(self, i: int) -> tuple[int, int]:
        """(input length, label length) of row i, from the offsets alone."""
        ins, labs = self.lists["input_ids"][0], self.lists["labels"][0]
        return int(ins[i + 1] - ins[i]), int(labs[i + 1] - labs[i])

    def row(self, i: int) -> dict:
        out = {"id": self.ids[i], "doc_id": self.doc_ids[i]}
        for name, (offsets, values) in self.lists.items():
            out[name] = values[offsets[i] : offsets[i + 1]].tolist()
        return out


def _last_two(cache: dict, key, value) -> dict:
    """`cache` with `key` added, keeping only the entry added before it: a
    global batch across a shard boundary needs two shards at hand, not more."""
    return {**dict(list(cache.items())[-1:]), key: value}


class ShardStream:
    """Random access to the shuffled example stream of one source."""

    def __init__(self, src: Source, seed: int, shuffle: bool = True):
        self.src, self.seed, self.shuffle = src, seed, shuffle
        self.storage = src.storage
        self._epoch = None
        self._table_cache: dict[tuple[int, str], ShardRows] = {}
        self._perms: dict[tuple, np.ndarray] = {}
        self._verified: dict[str, tuple] = {}  # shard path -> file status when it hashed right

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

    def _rows(self, shard: ShardEntry, epoch: int) -> ShardRows:
        """The shard's rows (the last two shards in memory, so that a global
        batch across a shard boundary reads each once): Arrow streams
        memory-mapped when local, Parquet and WebDataset decoded whole."""
        key = (epoch, shard.path)  # opened (and checked) anew in each epoch
        rows = self._table_cache.get(key)
        if rows is None:
            if self.src.verify:
                self._check(shard)
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
            self._table_cache = _last_two(self._table_cache, key, rows)
        return rows

    def _check(self, shard: ShardEntry) -> None:
        """The shard is still the one index.json lists, checked at every open so
        that a shard rewritten during the run is caught when it is next read:
        its sha256 the first time this process opens it, then its file status
        (size, mtime, ctime, inode: any write changes ctime, which no tool
        sets back) unless that changed, when it is hashed again. On remote
        storage every open hashes."""
        url = self.storage.url(shard.path)
        try:
            sig = self._signature(shard)
            if sig is not None and self._verified.get(shard.path) == sig:
                return
            same = (
                self.storage.size(shard.path) == shard.bytes
                and self.storage.sha256(shard.path) == shard.sha256
            )
        except FileNotFoundError:
            raise DataError(f"{url}: shard listed in index.json is gone") from None
        if not same:
            raise DataError(
                f"{url}: size or sha256 differs from index.json: the shard changed after the "
                "folder was written (rewritten during the run?); nothing of it was trained on"
            )
        if sig is not None:
            self._verified[shard.path] = sig  # taken before hashing: a write since shows

    def _signature(self, shard: ShardEntry) -> tuple | None:
        if not self.storage.local:
            return None
        st = os.stat(self.storage.path(shard.path))
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino

    def _locate(self, position: int) -> tuple[int, ShardEntry, int]:
        """(epoch, shard, row in that shard) of a stream position."""
        n = self.src.size
        epoch, offset = divmod(position, n)
        shards, cum = self._epoch_order(epoch)
        k = bisect.bisect_right(cum, offset)
        shard = shards[k]
        row_in_shard = offset - (cum[k - 1] if k else 0)
        if self.shuffle:
            key = (epoch, shard.stem)  # the same order in every format
            perm = self._perms.get(key)
            if perm is None:
                perm = stable_rng(self.seed, "rows", *key).permutation(shard.examples)
                self._perms = _last_two(self._perms, key, perm)
            row_in_shard = int(perm[row_in_shard])
        return epoch, shard, row_in_shard

    def stored_length(self, position: int) -> tuple[int, int]:
        """(input length, label length) of the stored row at `position`."""
        epoch, shard, i = self._locate(position)
        return self._rows(shard, epoch).stored_length(i)

    def example(self, position: int) -> dict:
        epoch, shard, i = self._locate(position)
        row = self._rows(shard, epoch).row(i)
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
    """Yields this rank's micro-batches, in order, forever: collated into
    tensors (`train/batches.py`) when `pad_id` is given, else as row lists.

    With `bucket`, each global batch (`micro_batch x world_size x accum`
    positions) is sorted by stored length before it is cut into micro-batches
    (`bucket_plan`); the global batch holds the same examples either way.
    `state_dict()` / `load_state_dict()` carry the number of micro-steps the
    job has consumed.
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
        *,
        accum: int = 1,
        bucket: bool = False,
        pad_id: int | None = None,
        pad_to_multiple_of: int = 1,
        pad_labels_to_multiple_of: int = 0,
    ):
        self.mix = Mixture(sources, seed, shuffle)
        self.micro, self.rank, self.world = micro_batch, rank, world_size
        self.vocab_size, self.max_length = vocab_size, max_length
        self.accum, self.bucket = accum, bucket
        self.pad_id, self.pad_to_multiple_of = pad_id, pad_to_multiple_of
        self.pad_labels_to_multiple_of = pad_labels_to_multiple_of
        self.micro_steps_done = 0
        self._source_counts = [0] * len(sources)  # positions consumed per source
        self._counted_upto = 0
        self._plan: tuple = (None, None, 0)  # (global batch, sorted positions, label tokens)

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
        if len(self.mix.streams) == 1:
            return [(0, p) for p in range(start, stop)]
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

    def _global_plan(self, g: int) -> tuple[list[tuple[int, int]], int]:
        """Global batch g's positions sorted by stored length, and its stored
        label tokens (cached: the micro-batches of one global batch share it)."""
        if self._plan[0] != g:
            size = self.micro * self.world * self.accum
            pos = self._source_positions(g * size, (g + 1) * size)
            lengths = [self.mix.streams[s].stored_length(p) for s, p in pos]
            order = bucket_plan(lengths)
            self._plan = (g, [pos[i] for i in order], sum(n for _, n in lengths))
        return self._plan[1], self._plan[2]

    def _positions(self, micro_step: int) -> tuple[list[tuple[int, int]], int]:
        if not self.bucket:
            start = (micro_step * self.world + self.rank) * self.micro
            return self._source_positions(start, start + self.micro), 0
        g, k = divmod(micro_step, self.accum)
        plan, label_tokens = self._global_plan(g)
        slot = k * self.world + self.rank  # neighbouring slots: similar lengths on every rank
        return plan[slot * self.micro : (slot + 1) * self.micro], label_tokens

    def micro_batch(self, micro_step: int) -> list[dict]:
        """The rows of this rank's micro-batch at global micro-step `micro_step`."""
        return self._micro_batch(micro_step)[0]

    def _micro_batch(self, micro_step: int) -> tuple[list[dict], int]:
        pos, label_tokens = self._positions(micro_step)
        fetched = {sp: self.mix.streams[sp[0]].example(sp[1]) for sp in sorted(pos)}
        rows = [fetched[sp] for sp in pos]
        if self.vocab_size is not None:
            for r in rows:
                why = check_row(r, self.vocab_size, self.max_length or 10**9)
                if why:
                    raise DataError(f"example {r['id']}: {why}")
        return rows, label_tokens

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        step = self.micro_steps_done
        while True:
            if (step - self.micro_steps_done) % nw == wid or nw == 1:
                try:
                    rows, label_tokens = self._micro_batch(step)
                except DataError as exc:  # to the trainer as data: a worker's own raise
                    if self.pad_id is None:  # would reach it wrapped in a traceback
                        raise
                    yield {"data_error": str(exc)}
                    return
                if self.pad_id is None:
                    yield rows
                else:
                    yield collate_micro(
                        rows,
                        self.pad_id,
                        self.pad_to_multiple_of,
                        label_tokens,
                        self.pad_labels_to_multiple_of,
                    )
            step += 1

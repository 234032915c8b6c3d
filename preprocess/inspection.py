"""`maskpt inspect`: summarise, show and verify a shard folder (a local path
or any fsspec URL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from maskpt.core.storage import Storage
from preprocess.index import ShardIndex, ShardIndexError, load_index
from preprocess.shards import ShardError, check_row, read_rows


def _storage(folder) -> Storage:
    return folder if isinstance(folder, Storage) else Storage(str(folder))


def iter_rows(folder, index: ShardIndex | None = None) -> Iterator[tuple[str, int, dict]]:
    """(shard path, row number, row) over the folder's primary format."""
    storage = _storage(folder)
    index = index or load_index(storage)
    fmt = index.primary_format
    for shard in index.shards_of(fmt):
        for k, row in enumerate(read_rows(storage, shard.path, fmt)):
            yield shard.path, k, row


def mask_runs(mask) -> list[int]:
    """Lengths of the runs of masked tokens."""
    runs, cur = [], 0
    for m in mask:
        if m:
            cur += 1
        elif cur:
            runs.append(cur)
            cur = 0
    if cur:
        runs.append(cur)
    return runs


def summarize(folder) -> dict:
    index = load_index(_storage(folder))
    masked = content = rows = 0
    spans: Counter = Counter()
    for _, _, row in iter_rows(folder, index):
        rows += 1
        masked += sum(row["masked"])
        content += len(row["original_ids"]) - 2
        spans.update(mask_runs(row["masked"]))
    d = index.as_dict()
    return {
        "folder": str(folder),
        "policy": d["policy"],
        "seed": index.seed,
        "tokenizer": d["tokenizer"],
        "max_length": index.max_length,
        "formats": d["formats"],
        "shards": len(index.shards_of()),
        "examples": rows,
        "counts": d["counts"],
        "mask_ratio": masked / max(1, content),
        "span_length_histogram": {str(k): spans[k] for k in sorted(spans)},
    }


def find_rows(folder, n: int, row_id: str | None = None) -> list[dict]:
    out = []
    for _, _, row in iter_rows(folder):
        if row_id is None or row["id"] == row_id:
            out.append(row)
            if len(out) >= n:
                break
    return out


def verify(folder) -> list[str]:
    """Every problem found, each naming the shard (and row); empty when sound."""
    storage = _storage(folder)
    try:
        index = load_index(storage)
    except (FileNotFoundError, ShardIndexError) as exc:
        return [str(exc)]
    problems: list[str] = []
    vocab, max_len = index.tokenizer.vocab_size, index.max_length
    per_format: dict[str, dict] = {}
    for shard in index.shards:
        if not storage.exists(shard.path):
            problems.append(f"{shard.path}: missing")
            continue
        size = storage.size(shard.path)
        if size != shard.bytes:
            problems.append(f"{shard.path}: {size} bytes, manifest says {shard.bytes}")
        if storage.sha256(shard.path) != shard.sha256:
            problems.append(f"{shard.path}: sha256 does not match the manifest")
        rows = []
        try:
            for k, row in enumerate(read_rows(storage, shard.path, shard.format)):
                why = check_row(row, vocab, max_len)
                if why:
                    problems.append(f"{shard.path}: row {k} ({row['id']}): {why}")
                rows.append(row)
        except ShardError as exc:
            problems.append(f"{shard.path}: row {len(rows)}: {exc}")
            continue
        if len(rows) != shard.examples:
            problems.append(f"{shard.path}: {len(rows)} rows, manifest says {shard.examples}")
        per_format.setdefault(shard.format, {})[shard.stem] = rows
    if not problems:
        problems += _cross_checks(index, per_format)
    return problems


def _cross_checks(index: ShardIndex, per_format: dict) -> list[str]:
    problems = []
    formats = list(per_format)
    for fmt in formats[1:]:
        for stem, rows in per_format[formats[0]].items():
            if per_format[fmt].get(stem) != rows:
                problems.append(f"{stem}: {formats[0]} and {fmt} shards hold different rows")
    rows = [r for rs in per_format.get(formats[0], {}).values() for r in rs] if formats else []
    c = index.counts
    if len(rows) != c.segments_written:
        problems.append(f"{len(rows)} rows in shards, manifest counts {c.segments_written}")
    tokens = sum(len(r["original_ids"]) for r in rows)
    if tokens != c.tokens_written:
        problems.append(f"{tokens} tokens in shards, manifest counts {c.tokens_written}")
    dup = [k for k, v in Counter(r["id"] for r in rows).items() if v > 1]
    if dup:
        problems.append(f"{len(dup)} duplicate ids, e.g. {dup[0]}")
    return problems

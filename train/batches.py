"""Micro-batches as the training step takes them, made off its thread.

`collate_micro` turns a micro-batch's rows into the three tensors the model
reads (`input_ids`, `attention_mask`, `labels`) plus the few numbers the step
logs (example ids, token and mask counts), in the DataLoader worker that read
the rows, so that only those cross to the training process and nothing
there waits on Python lists. Padding (`maskpt/core/batching.py`) is NumPy,
optionally to a multiple of `pad_to_multiple_of` so that a compiled model
sees a few shapes only.

`bucket_plan` is length bucketing inside one global batch: its positions
sorted by each row's *stored* length (a stable sort, ties by position), so
that the micro-batches cut from it pad little. It is a pure function of the
global batch's positions and the stored lengths: every rank and worker
computes the same plan, and a resumed run the same as an uninterrupted one.
The global batch's stored label-token count travels with each micro-batch
(`norm_tokens`), for a loss normalised over the whole global batch.
"""

from __future__ import annotations

from maskpt.core.batching import pad, pad_ids

IGNORE = -100
"""Label id the loss ignores (padding)."""


def collate_micro(
    rows: list[dict],
    pad_id: int,
    pad_to_multiple_of: int = 1,
    norm_tokens: int = 0,
    labels_multiple: int = 0,
) -> dict:
    """A micro-batch as tensors: `input_ids` / `attention_mask` (padded with
    `pad_id` to a multiple of `pad_to_multiple_of`), `labels` (padded with
    -100 to a multiple of `labels_multiple`, or of `pad_to_multiple_of` when
    0), and `ids` (the example ids),
    `tokens` (input + label tokens), `label_tokens`, `masked` / `original`
    (masked and original token counts, for the mask ratio), `norm_tokens`
    (the global batch's label tokens when bucketing, else 0) as plain values."""
    sources = [r["input_ids"] for r in rows]
    targets = [r["labels"] for r in rows]
    ids, att = pad_ids(sources, pad_id, pad_to_multiple_of)
    n_in, n_lab = sum(map(len, sources)), sum(map(len, targets))
    return {
        "input_ids": ids,
        "attention_mask": att,
        "labels": pad(targets, IGNORE, labels_multiple or pad_to_multiple_of),
        "ids": [r["id"] for r in rows],
        "tokens": n_in + n_lab,
        "label_tokens": n_lab,
        "masked": int(sum(sum(r["masked"]) for r in rows)),
        "original": sum(len(r["masked"]) for r in rows),
        "norm_tokens": norm_tokens,
    }


TENSORS = ("input_ids", "attention_mask", "labels")
"""The keys of a collated micro-batch that go to the device."""


def keep_as_is(batch):
    """The DataLoader's `collate_fn`: micro-batches arrive collated (PyTorch's
    default would walk every value of every row again)."""
    return batch


def bucket_plan(lengths: list[tuple[int, int]]) -> list[int]:
    """Indices of a global batch's rows, shortest first: sorted by (input
    length, label length), ties kept in position order."""
    return sorted(range(len(lengths)), key=lambda i: lengths[i])


def padding_share(batches: list[dict]) -> float:
    """The share of padded positions (inputs and labels) over `batches`."""
    real = sum(b["tokens"] for b in batches)
    total = sum(b["input_ids"].numel() + b["labels"].numel() for b in batches)
    return 1.0 - real / max(total, 1)

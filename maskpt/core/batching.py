"""Padding token-id lists into batch tensors: one helper for the
pre-training stream (`train/batches.py`), fine-tuning, and the learned
policies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad(seqs: Sequence[Sequence[int]], value: int, multiple: int = 1) -> torch.Tensor:
    """[len(seqs), longest rounded up to `multiple`] long tensor, each row
    left-aligned and filled with `value` (NumPy: one slice copy per row)."""
    width = -(-max(len(s) for s in seqs) // multiple) * multiple
    out = np.full((len(seqs), width), value, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def pad_ids(
    seqs: Sequence[Sequence[int]], pad_id: int, multiple: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids padded with `pad_id`, attention mask of 1s over the real tokens)."""
    ids = pad(seqs, pad_id, multiple)
    lengths = np.array([len(s) for s in seqs])
    att = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    return ids, torch.from_numpy(att.astype(np.int64))


def pad_seq2seq(sources, targets, pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask from the sources, labels (-100 padding) from the targets."""
    ids, att = pad_ids(sources, pad_id)
    return {"input_ids": ids, "attention_mask": att, "labels": pad(targets, -100)}

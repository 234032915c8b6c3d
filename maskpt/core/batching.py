"""Padding token-id lists into batch tensors: one helper for the
pre-training stream, fine-tuning, and the learned policies."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """[len(seqs), longest] long tensor, each row left-aligned and filled with `value`."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def pad_ids(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids padded with `pad_id`, attention mask of 1s over the real tokens)."""
    ids = pad(seqs, pad_id)
    att = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        att[i, : len(s)] = 1
    return ids, att


def pad_seq2seq(sources, targets, pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask from the sources, labels (-100 padding) from the targets."""
    ids, att = pad_ids(sources, pad_id)
    return {"input_ids": ids, "attention_mask": att, "labels": pad(targets, -100)}

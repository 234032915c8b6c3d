"""Seq2seq helpers for fine-tuning: encode task examples, cut deterministic
batches, label-smoothed loss, batched beam-search prediction and scoring.
Functions only; `train/finetune.py` composes them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from maskpt.batching import pad_seq2seq
from train.metrics import METRICS, mc_accuracy
from train.tasks import TaskExample


@dataclass(frozen=True)
class Encoded:
    source: list[int]
    target: list[int]


def encode(
    tokenizer,
    examples: Sequence[TaskExample],
    max_source: int,
    max_target: int,
    prefix_space: bool = False,
):
    """Token ids of sources and targets, truncated (ends keep </s>); with
    `prefix_space`, targets are encoded as " " + target."""
    src = tokenizer([e.source for e in examples], truncation=True, max_length=max_source)
    pre = " " if prefix_space else ""
    tgt = tokenizer([pre + e.target.lstrip() if pre else e.target for e in examples],
                    truncation=True, max_length=max_target)  # fmt: skip
    return [Encoded(s, t) for s, t in zip(src["input_ids"], tgt["input_ids"], strict=True)]


def subset(examples: list, fraction: float, seed: int) -> list:
    """A fixed random `fraction` of the examples (at least 1), the same for
    every checkpoint and training seed given `seed` (the low-resource setting)."""
    if fraction >= 1.0:
        return list(examples)
    k = max(1, round(fraction * len(examples)))
    keep = np.sort(np.random.default_rng(seed).permutation(len(examples))[:k])
    return [examples[i] for i in keep]


def index_stream(n: int, seed: int) -> Iterator[int]:
    """Example indices, one shuffled pass after another; a pass's order
    depends only on (seed, pass)."""
    epoch = 0
    while True:
        yield from np.random.default_rng([seed, epoch]).permutation(n).tolist()
        epoch += 1


def global_batches(n: int, batch: int, seed: int) -> Iterator[list[int]]:
    """Global batches of `batch` indices over the stream; nothing is dropped:
    a pass's last partial batch continues into the next pass."""
    stream = index_stream(n, seed)
    while True:
        yield [next(stream) for _ in range(batch)]


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    return pad_seq2seq([x.source for x in items], [x.target for x in items], pad_id)


def smoothed_loss(model, batch: dict[str, torch.Tensor], smoothing: float) -> torch.Tensor:
    """Token-level cross-entropy with label smoothing over non-pad targets."""
    logits = model(**batch).logits
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        batch["labels"].reshape(-1),
        ignore_index=-100,
        label_smoothing=smoothing,
    )


@torch.no_grad()
def predict(
    model,
    tokenizer,
    encoded: Sequence[Encoded],
    batch_size: int,
    num_beams: int,
    min_length: int,
    max_length: int,
    device,
    progress: bool = False,
) -> list[str]:
    """Beam-search outputs for every example, in input order. Batches are
    formed from length-sorted sources (less padding), then put back in order."""
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].source))
    out: list[str] = [""] * len(encoded)
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="generate", leave=False, dynamic_ncols=True)
    for s in starts:
        idx = order[s : s + batch_size]
        batch = collate([encoded[i] for i in idx], tokenizer.pad_token_id)
        gen = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            num_beams=num_beams,
            min_new_tokens=min_length,
            max_new_tokens=max_length,
            early_stopping=True,
        )
        for i, text in zip(idx, tokenizer.batch_decode(gen, skip_special_tokens=True), strict=True):
            out[i] = text.strip()
    model.train()
    return out


def score(metric: str, prediction: str, example: TaskExample) -> float:
    if metric == "accuracy":
        return mc_accuracy(prediction, example.choices, example.target)
    return METRICS[metric](prediction, example.answers)

"""Seq2seq data helpers for fine-tuning: encode task examples, the fixed
low-resource subset, the torch datasets the Trainer reads, and scoring a
prediction. Functions only; `train/finetune.py` composes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers.models.bart.modeling_bart import shift_tokens_right

from maskpt.core.batching import pad, pad_ids
from maskpt.core.seeding import stable_rng
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
) -> list[Encoded]:
    """Token ids of sources and targets, truncated (ends keep </s>); with
    `prefix_space`, targets are encoded as " " + target."""
    src = tokenizer([e.source for e in examples], truncation=True, max_length=max_source)
    pre = " " if prefix_space else ""
    tgt = tokenizer(
        [pre + e.target.lstrip() if pre else e.target for e in examples],
        truncation=True,
        max_length=max_target,
    )
    return [Encoded(s, t) for s, t in zip(src["input_ids"], tgt["input_ids"], strict=True)]


def subset(examples: list, fraction: float, seed: int) -> list:
    """A fixed random `fraction` of the examples (at least 1), the same for
    every checkpoint and training seed given `seed` (the low-resource setting)."""
    if fraction >= 1.0:
        return list(examples)
    k = max(1, round(fraction * len(examples)))
    keep = sorted(stable_rng("subset", seed).permutation(len(examples))[:k].tolist())
    return [examples[i] for i in keep]


class TrainSet(torch.utils.data.Dataset):
    """(source, target) pairs as the Trainer's collator wants them."""

    def __init__(self, encoded: Sequence[Encoded]):
        self.encoded = list(encoded)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict:
        e = self.encoded[i]
        return {"input_ids": e.source, "labels": e.target}


class EvalSet(torch.utils.data.Dataset):
    """Sources and each example's index, no labels (generation needs none,
    and a forward pass for an eval loss would cost as much again), in order
    of length so that generation batches pad little."""

    def __init__(self, encoded: Sequence[Encoded]):
        self.order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].source))
        self.sources = [encoded[i].source for i in self.order]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, k: int) -> dict:
        return {"input_ids": self.sources[k], "example_index": self.order[k]}


class Collator:
    """Pads a list of `TrainSet`/`EvalSet` items: input_ids and attention_mask;
    with targets also labels (-100 padding) and the decoder input (labels
    shifted right behind the decoder start token), which label smoothing
    needs because the model then gets no labels of its own; evaluation items
    keep their example index ([B, 1])."""

    def __init__(self, pad_id: int, decoder_start_id: int):
        self.pad_id, self.start_id = pad_id, decoder_start_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids, att = pad_ids([f["input_ids"] for f in features], self.pad_id)
        batch = {"input_ids": ids, "attention_mask": att}
        if "labels" in features[0]:
            labels = pad([f["labels"] for f in features], -100)
            batch["labels"] = labels
            batch["decoder_input_ids"] = shift_tokens_right(labels, self.pad_id, self.start_id)
        if "example_index" in features[0]:
            batch["example_index"] = torch.tensor([[f["example_index"]] for f in features])
        return batch


def score(metric: str, prediction: str, example: TaskExample) -> float:
    if metric == "accuracy":
        return mc_accuracy(prediction, example.choices, example.target)
    return METRICS[metric](prediction, example.answers)

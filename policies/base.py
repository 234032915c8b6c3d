"""What every policy shares: the per-segment random generator, the default
`mask_batch`, and turning a token mask into a span-format example.

Determinism: a policy's decision for a segment depends only on (segment,
config, seed, segment id). Each segment gets its own numpy generator seeded
from a stable hash of (seed, policy name, segment id), so worker count, batch
size and order cannot change the output, and global RNG state is never used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maskpt.core.records import MaskedSegment, Segment, Skip
from maskpt.core.seeding import stable_rng
from maskpt.core.tokenizer import TokenizerInfo


def segment_rng(seed: int, policy: str, segment_id: str) -> np.random.Generator:
    """A generator that is a pure function of (seed, policy, segment id)."""
    return stable_rng(int(seed), policy, segment_id)


class Policy:
    """Base for masking policies: subclasses set `config_cls` and implement `mask`.

    `name` is set by `policies.registry.register`.
    """

    name: str = ""
    config_cls: type
    target_format: str = "span"
    """`full` (the whole original sequence) or `span` (the masked spans)."""
    wants_gpu: bool = False
    """Learned policies set this: the pipeline then runs them in GPU actors
    (batched inference) when the cluster has GPUs, and in CPU actors otherwise."""

    def __init__(self, config, tokenizer_info: TokenizerInfo):
        self.config = config
        self.tok = tokenizer_info

    def setup(self, device: str) -> None:
        """Called once per worker before masking, with "cuda" or "cpu": load
        models, move them to the device. Heuristic policies need nothing.
        Output must not depend on the device."""

    def mask(self, segment: Segment, seed: int) -> MaskedSegment | Skip:
        raise NotImplementedError

    def mask_batch(self, segments: Sequence[Segment], seed: int) -> list[MaskedSegment | Skip]:
        """One result per segment, in order: a `MaskedSegment` or a `Skip`."""
        return [self.mask(s, seed) for s in segments]

    def rng(self, segment: Segment, seed: int) -> np.random.Generator:
        return segment_rng(seed, self.name, segment.id)


def span_example(
    input_ids: Sequence[int], mask: Sequence[bool], tok: TokenizerInfo
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Source and span-format target for a token mask.

    Source: the input with each run of masked tokens replaced by one `<mask>`.
    Target: `<s>` run_1 `<mask>` run_2 ... `</s>`, the masked runs in order.
    """
    source: list[int] = []
    target: list[int] = [tok.bos_id]
    in_run = False
    for tid, m in zip(input_ids, mask, strict=True):
        if m:
            if not in_run:
                source.append(tok.mask_id)
                if len(target) > 1:
                    target.append(tok.mask_id)
                in_run = True
            target.append(tid)
        else:
            source.append(tid)
            in_run = False
    target.append(tok.eos_id)
    return tuple(source), tuple(target)


def fill_spans(
    source_ids: Sequence[int], target_ids: Sequence[int], tok: TokenizerInfo
) -> list[int]:
    """Inverse of `span_example`: put each target run back at its `<mask>`."""
    body = list(target_ids[1:-1])
    runs: list[list[int]] = [[]]
    for t in body:
        if t == tok.mask_id:
            runs.append([])
        else:
            runs[-1].append(t)
    if not body:
        runs = []
    out: list[int] = []
    k = 0
    for t in source_ids:
        if t == tok.mask_id:
            if k >= len(runs):
                raise ValueError("source has more <mask> tokens than the target has spans")
            out.extend(runs[k])
            k += 1
        else:
            out.append(t)
    if k != len(runs):
        raise ValueError(f"target has {len(runs)} spans for {k} <mask> tokens in the source")
    return out


def masked_span_example(policy: Policy, segment: Segment, mask) -> MaskedSegment:
    source, target = span_example(segment.input_ids, mask, policy.tok)
    return MaskedSegment(
        segment=segment,
        source_ids=source,
        target_ids=target,
        mask=tuple(bool(m) for m in mask),
        format="span",
        policy=policy.name,
    )

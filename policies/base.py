"""What every policy shares: annotations, the per-(segment, epoch) random
generator, `mask_batch`, and turning a token mask into a span-format example.

A policy is split in two (so that the expensive part runs once, on the
preprocessing workers, and the cheap part every epoch, in the trainer):

- `annotate(segments)`: what the mask depends on and costs to compute, stored
  in the shard row (`Annotation`): for every policy the word and sentence
  starts; `ssm_v1` adds its salient entities as token ranges, `sup_v1` its
  ranked candidate spans, `meta_v1` its per-token mask probabilities. A
  segment the policy cannot use gets a `Skip` (counted, not written).
- `draw(segment, annotation, seed, epoch)`: the mask, a pure function of the
  segment's tokens, its annotation, the policy config, the seed and the epoch
  (its own numpy generator, seeded from a stable hash of seed, policy name,
  segment id and epoch): the same in `maskpt mask`, in preprocessing (which
  writes epoch 0) and in the trainer's loader (every epoch), whatever the
  process, worker count, batch size or order. Global RNG state is never used.

`needs` names the annotation kinds a draw reads; a shard folder records the
kinds it holds, and a policy whose needs it lacks is refused by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from maskpt.core.records import MaskedSegment, Segment, Skip
from maskpt.core.seeding import stable_rng
from maskpt.core.tokenizer import TokenizerInfo, sentence_starts

BASE_KINDS = frozenset({"words", "sentences"})
"""The annotation kinds every shard row has."""


@dataclass(frozen=True)
class Annotation:
    """What a policy's draw reads besides the tokens; one flag or value per
    input token where per-token (the specials `<s>`/`</s>` included)."""

    word_starts: tuple[bool, ...]
    """The token begins a whitespace-delimited word (specials: False)."""
    sentence_starts: tuple[bool, ...]
    """The token begins a sentence (specials: False)."""
    spans: tuple[tuple[int, int], ...] = ()
    """Token ranges [start, end): ssm_v1's salient entities in text order,
    sup_v1's candidate spans best first."""
    token_probs: tuple[int, ...] = ()
    """meta_v1: each token's mask probability in thousandths (0-1000)."""

    @property
    def word_ids(self) -> tuple[int, ...]:
        """The word index of each token (-1 for specials), from the word starts:
        the word starts up to and including the token, less one (0 before the
        first). Every per-epoch draw reads it: a running sum, not a loop."""
        n = len(self.word_starts)
        if n <= 2:
            return (-1,) * n
        inner = [c - 1 if c else 0 for c in accumulate(map(bool, self.word_starts[1:-1]))]
        return (-1, *inner, -1)


def base_annotation(segment: Segment) -> Annotation:
    """Word and sentence starts of a tokenized segment (what every row stores)."""
    w = segment.word_ids
    n = len(w)
    words = [False] + [w[i] != w[i - 1] for i in range(1, n - 1)] + [False]
    sents = sentence_starts(segment.text, segment.offsets[1:-1], words[1:-1])
    return Annotation(tuple(words), (False, *sents, False))


def draw_rng(seed: int, policy: str, segment_id: str, epoch: int) -> np.random.Generator:
    """A generator that is a pure function of (seed, policy, segment id, epoch)."""
    return stable_rng(int(seed), policy, segment_id, int(epoch))


class Policy:
    """Base for masking policies: subclasses set `config_cls` and implement
    `draw` (and `annotate` when they need more than the base annotation).

    `name` is set by `policies.registry.register`.
    """

    name: str = ""
    config_cls: type
    target_format: str = "span"
    """`full` (the whole original sequence) or `span` (the masked spans)."""
    wants_gpu: bool = False
    """Learned policies set this: the pipeline then runs them in GPU actors
    (batched inference) when the cluster has GPUs, and in CPU actors otherwise."""
    needs: frozenset[str] = frozenset()
    """Annotation kinds `draw` reads (besides the tokens)."""
    provides: frozenset[str] = BASE_KINDS
    """Annotation kinds `annotate` stores."""

    def __init__(self, config, tokenizer_info: TokenizerInfo, annotating: bool = True):
        self.config = config
        self.tok = tokenizer_info

    def setup(self, device: str) -> None:
        """Called once per worker before annotating, with "cuda" or "cpu": load
        models, move them to the device. Heuristic policies need nothing.
        Output must not depend on the device."""

    def annotate(self, segments: Sequence[Segment]) -> list[Annotation | Skip]:
        """One annotation (or a `Skip`) per segment; the base one by default."""
        return [base_annotation(s) for s in segments]

    def draw(self, segment: Segment, ann: Annotation, seed: int, epoch: int) -> MaskedSegment:
        raise NotImplementedError

    def mask_batch(
        self, segments: Sequence[Segment], seed: int, epoch: int = 0
    ) -> list[MaskedSegment | Skip]:
        """One result per segment, in order: a `MaskedSegment` or a `Skip`."""
        return self.draw_all(segments, self.annotate(segments), seed, epoch)

    def draw_all(
        self, segments: Sequence[Segment], annotations, seed: int, epoch: int = 0
    ) -> list[MaskedSegment | Skip]:
        """`draw` for each segment with its annotation; a `Skip` passes through."""
        return [
            a if isinstance(a, Skip) else self.draw(s, a, seed, epoch)
            for s, a in zip(segments, annotations, strict=True)
        ]

    def mask(self, segment: Segment, seed: int, epoch: int = 0) -> MaskedSegment | Skip:
        return self.mask_batch([segment], seed, epoch)[0]

    def rng(self, segment: Segment, seed: int, epoch: int = 0) -> np.random.Generator:
        return draw_rng(seed, self.name, segment.id, epoch)


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
        mask=tuple(map(bool, mask)),
        format="span",
        policy=policy.name,
    )

"""`orig_v1`: BART's denoising (Lewis et al., 2020) as fairseq's
`DenoisingDataset` does it with the BART paper's settings.

1. Permute sentences (ratio 1.0: all of them).
2. Whole-word span masking: the budget is ceil(30% of the words); span lengths
   in words are drawn from Poisson(3) until they cover the budget, the last one
   trimmed to fit. Each non-empty span starts at a distinct random word start
   (in the permuted order) and runs over `length` words; its first token
   becomes `<mask>` and the rest are deleted (replace_length=1), so a span
   becomes one `<mask>`. Spans may run into each other, as in fairseq.
3. 10% of spans become one random token instead of `<mask>`.
4. Zero-length spans insert a token at a random position (never before `<s>`
   or after `</s>`): `<mask>`, or a random token with the same 10%.
Target: the full original sequence (format `full`).

Where we differ from fairseq, on purpose: random tokens are drawn from the
non-special vocabulary (fairseq draws from ids 1..V-1, which can produce
`</s>` or `<pad>`); an inserted zero-length span is random with probability
`random_ratio` (fairseq makes ceil(10% of the inserts) random, which is every
insert when there is only one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import compress

import numpy as np

from maskpt.core.records import MaskedSegment, Segment
from policies.base import Annotation, Policy, base_annotation
from policies.registry import register


@dataclass(frozen=True)
class OrigConfig:
    mask_ratio: float = 0.3
    """Share of whole words in the masking budget (BART: 0.3)."""
    poisson_lambda: float = 3.0
    """Mean span length in words (BART: 3). 0 masks single words."""
    random_ratio: float = 0.1
    """Share of spans that become a random token instead of `<mask>` (BART: 0.1)."""
    permute_sentences: float = 1.0
    """Share of sentences whose order is shuffled (BART: 1.0)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {self.mask_ratio}")
        if self.poisson_lambda < 0:
            raise ValueError(f"poisson_lambda must be >= 0, got {self.poisson_lambda}")
        for key in ("random_ratio", "permute_sentences"):
            v = getattr(self, key)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {v}")


@dataclass
class OrigPlan:
    """The random decisions for one segment (exposed for tests and analysis)."""

    order: list[int]
    """New order of the segment's sentences (indices of the original sentences)."""
    perm: list[int]
    """perm[j] = original position of the token at position j after permutation."""
    span_lengths: list[int]
    """Sampled span lengths in words after the budget trim, zeros included."""
    starts: list[int]
    """Start position (in permuted order) of each non-empty span."""
    random: np.ndarray
    """Per non-empty span: replaced by a random token instead of `<mask>`."""
    insert_random: np.ndarray
    """Per zero-length span: inserts a random token instead of `<mask>`."""
    num_words: int


def sample_span_lengths(rng: np.random.Generator, budget: int, lam: float) -> list[int]:
    """Poisson(lam) lengths until they cover `budget` words, the last trimmed."""
    lengths: list[int] = []
    total = 0
    while total < budget:  # draws come in blocks of `budget`, as in fairseq
        for x in rng.poisson(lam, size=budget).tolist():
            if total + x >= budget:
                lengths.append(budget - total)
                return lengths
            lengths.append(x)
            total += x
    return lengths


@register("orig_v1")
class OrigPolicy(Policy):
    config_cls = OrigConfig
    target_format = "full"
    needs = frozenset({"words", "sentences"})

    def __init__(self, config, tokenizer_info, annotating: bool = True):
        super().__init__(config, tokenizer_info, annotating)
        self._random_pool = np.array(
            sorted(set(range(tokenizer_info.vocab_size)) - tokenizer_info.special_ids),
            dtype=np.int64,
        )

    def _random_tokens(self, rng: np.random.Generator, k: int) -> list[int]:
        """k uniform draws from the non-special vocabulary."""
        if not k:
            return []
        return self._random_pool[rng.integers(len(self._random_pool), size=k)].tolist()

    def plan(self, segment: Segment, seed: int, epoch: int = 0) -> OrigPlan:
        """The random decisions `mask` would take for this segment, seed and epoch."""
        return self._plan(segment, base_annotation(segment), self.rng(segment, seed, epoch))[0]

    def _plan(
        self, segment: Segment, ann: Annotation, rng: np.random.Generator
    ) -> tuple[OrigPlan, list[bool]]:
        """The plan and the word-start flags in permuted order."""
        # Plain Python lists: segments are short, and per-call numpy overhead
        # on 128-element arrays costs more than the loops.
        cfg = self.config
        n = len(segment.input_ids)
        is_start = list(ann.word_starts)

        # 1. sentence permutation (fairseq: permute ceil(k * p) of the k sentences)
        sst = ann.sentence_starts[1:-1]
        bounds = [1 + i for i in compress(range(len(sst)), sst)] + [n - 1]
        k = len(bounds) - 1
        order = list(range(k))
        m = math.ceil(k * cfg.permute_sentences)
        if k > 1 and m > 1:
            subs = rng.permutation(k)[:m]
            arr = np.arange(k)
            arr[subs] = subs[rng.permutation(m)]
            order = arr.tolist()
        perm = [0]
        for o in order:
            perm.extend(range(bounds[o], bounds[o + 1]))
        perm.append(n - 1)

        # 2. span lengths over the word budget, starts at distinct word starts
        ws = [is_start[i] for i in perm]
        word_pos = list(compress(range(n), ws))
        budget = math.ceil(len(word_pos) * cfg.mask_ratio)
        lengths = sample_span_lengths(rng, budget, cfg.poisson_lambda)
        n_spans = sum(1 for x in lengths if x > 0)
        starts = [word_pos[i] for i in rng.permutation(len(word_pos))[:n_spans].tolist()]
        random = rng.random(n_spans) < cfg.random_ratio
        insert_random = rng.random(len(lengths) - n_spans) < cfg.random_ratio
        plan = OrigPlan(order, perm, lengths, starts, random, insert_random, len(word_pos))
        return plan, ws

    def draw(self, segment: Segment, ann: Annotation, seed: int, epoch: int) -> MaskedSegment:
        rng = self.rng(segment, seed, epoch)
        plan, ws = self._plan(segment, ann, rng)  # then the same stream draws the tokens
        perm = plan.perm
        n = len(perm)
        ids = segment.input_ids
        src = [ids[i] for i in perm]
        ws[n - 1] = True  # </s> ends every span
        masked = [False] * n
        keep = [True] * n
        randoms = iter(self._random_tokens(rng, int(plan.random.sum())))
        lengths = [x for x in plan.span_lengths if x > 0]
        for start, length, rnd in zip(plan.starts, lengths, plan.random.tolist(), strict=True):
            src[start] = next(randoms) if rnd else self.tok.mask_id
            masked[start] = True
            remaining = length - 1
            j = start + 1
            # extend by whole words: delete tokens until the length-th next word start
            while j < n - 1 and (remaining := remaining - ws[j]) >= 0:
                keep[j] = False
                masked[j] = True
                j += 1
        result = list(compress(src, keep))

        inserts = len(plan.insert_random)
        if inserts:
            total = len(result) + inserts
            pos = sorted((rng.permutation(total - 2)[:inserts] + 1).tolist())
            n_rand = int(plan.insert_random.sum())
            fills = iter(self._random_tokens(rng, n_rand))
            for p, rnd in zip(pos, plan.insert_random.tolist(), strict=True):
                result.insert(p, next(fills) if rnd else self.tok.mask_id)

        mask = [False] * n
        for i in compress(perm, masked):
            mask[i] = True
        return MaskedSegment(
            segment=segment,
            source_ids=tuple(result),
            target_ids=segment.input_ids,
            mask=tuple(mask),
            format="full",
            policy=self.name,
        )

"""`rand_v1`: mask round(15% of n) uniformly chosen tokens (at least one).

n is the number of content tokens (`<s>`/`</s>` excluded); round halves up.
Each run of consecutive masked tokens becomes one `<mask>` in the source; the
target is the masked runs in order separated by `<mask>` (format `span`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from maskpt.core.records import MaskedSegment, Segment
from policies.base import Annotation, Policy, masked_span_example
from policies.registry import register


@dataclass(frozen=True)
class RandConfig:
    mask_ratio: float = 0.15
    """Share of content tokens to mask; the count is round(ratio * n), at least 1."""

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")


def num_to_mask(n: int, ratio: float) -> int:
    """round(ratio * n) with halves rounded up, at least 1 (n >= 1)."""
    return max(1, math.floor(ratio * n + 0.5))


def random_token_mask(n_tokens: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Bool mask over a full sequence (specials at both ends never chosen)."""
    n = n_tokens - 2
    mask = np.zeros(n_tokens, dtype=bool)
    mask[1 + rng.choice(n, size=num_to_mask(n, ratio), replace=False)] = True
    return mask


@register("rand_v1")
class RandPolicy(Policy):
    config_cls = RandConfig

    def draw(self, segment: Segment, ann: Annotation, seed: int, epoch: int) -> MaskedSegment:
        mask = random_token_mask(
            len(segment.input_ids), self.config.mask_ratio, self.rng(segment, seed, epoch)
        )
        return masked_span_example(self, segment, mask.tolist())

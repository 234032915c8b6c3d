"""Post-processing shared by learned policies at deployment (docs/DESIGN.md):

1. expand every masked token to its whole word;
2. where more than `max_ratio` (50%) of the content tokens are masked,
   unmask whole words at random until at most `target_ratio` (30%) remain;
3. merge each run of consecutive masked tokens into one `<mask>` (done by
   `finalize`, which builds the example in `span` or `full` format).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maskpt.core.records import MaskedSegment, Segment
from maskpt.core.tokenizer import TokenizerInfo
from policies.base import span_example


def expand_to_whole_words(mask: Sequence[bool], word_ids: Sequence[int]) -> np.ndarray:
    """Mask every token of any word that has a masked token; specials (word id -1) never."""
    mask = np.asarray(mask, dtype=bool)
    word_ids = np.asarray(word_ids)
    hit = np.unique(word_ids[mask & (word_ids >= 0)])
    return np.isin(word_ids, hit) & (word_ids >= 0)


def cap_budget(
    mask: Sequence[bool],
    word_ids: Sequence[int],
    rng: np.random.Generator,
    max_ratio: float = 0.5,
    target_ratio: float = 0.3,
) -> np.ndarray:
    """If more than `max_ratio` of content tokens are masked, unmask random
    whole words until at most `target_ratio` are."""
    mask = np.asarray(mask, dtype=bool).copy()
    word_ids = np.asarray(word_ids)
    n = int((word_ids >= 0).sum())
    if n == 0 or mask.sum() <= max_ratio * n:
        return mask
    words = np.unique(word_ids[mask & (word_ids >= 0)])
    for w in words[rng.permutation(len(words))]:
        if mask.sum() <= target_ratio * n:
            break
        mask[word_ids == w] = False
    return mask


def finalize(
    segment: Segment,
    mask: Sequence[bool],
    rng: np.random.Generator,
    tok: TokenizerInfo,
    policy: str,
    target_format: str = "span",
    max_ratio: float = 0.5,
    target_ratio: float = 0.3,
) -> MaskedSegment:
    """Whole words, budget cap, merged masks -> a `MaskedSegment`."""
    m = expand_to_whole_words(mask, segment.word_ids)
    m = cap_budget(m, segment.word_ids, rng, max_ratio, target_ratio)
    source, span_target = span_example(segment.input_ids, m.tolist(), tok)
    target = span_target if target_format == "span" else segment.input_ids
    return MaskedSegment(
        segment=segment,
        source_ids=source,
        target_ids=target,
        mask=tuple(m.tolist()),
        format=target_format,
        policy=policy,
    )

import numpy as np

from maskpt.core.records import Segment
from policies.postprocess import cap_budget, expand_to_whole_words, finalize

WORD_IDS = [-1, 0, 0, 1, 2, 2, 2, 3, 4, 4, -1]


def test_expand_to_whole_words():
    mask = [False, False, True, False, False, False, True, False, False, False, False]
    out = expand_to_whole_words(mask, WORD_IDS)
    assert out.tolist() == [False, True, True, False, True, True, True, False, False, False, False]


def test_expand_never_masks_specials():
    out = expand_to_whole_words([True] * len(WORD_IDS), WORD_IDS)
    assert not out[0] and not out[-1] and out[1:-1].all()


def test_cap_leaves_masks_at_or_below_half():
    mask = np.array([False, True, True, False, False, False, False, True, False, False, False])
    assert (cap_budget(mask, WORD_IDS, np.random.default_rng(0)) == mask).all()  # 3/9: kept
    mask[4:7] = True
    mask[8:10] = True  # 8/9 masked
    for seed in range(20):
        out = cap_budget(mask, WORD_IDS, np.random.default_rng(seed))
        assert out.sum() <= 0.3 * 9
        assert not (out & ~mask).any(), "only unmasks"
        wid = np.asarray(WORD_IDS)
        for w in range(5):  # whole words stay whole
            assert out[wid == w].all() or not out[wid == w].any()


def test_finalize_merges_runs(tok_info):
    seg = Segment(
        "x-0",
        "x",
        "a b c d e",
        (0, 10, 11, 12, 13, 14, 2),
        (-1, 0, 1, 2, 3, 4, -1),
        ((0, 0), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (0, 0)),
    )
    mask = [False, False, True, True, False, False, False]
    ex = finalize(seg, mask, np.random.default_rng(0), tok_info, "test_v1", "span")
    m = tok_info.mask_id
    assert ex.source_ids == (0, 10, m, 13, 14, 2)
    assert ex.target_ids == (tok_info.bos_id, 11, 12, tok_info.eos_id)
    full = finalize(seg, mask, np.random.default_rng(0), tok_info, "test_v1", "full")
    assert full.source_ids == ex.source_ids and full.target_ids == seg.input_ids

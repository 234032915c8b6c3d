import math

import policies
from policies.base import fill_spans
from policies.rand import num_to_mask


def test_masks_round_15_percent(tok_info, many_segments):
    pol = policies.create("rand_v1", tok_info)
    for seg in many_segments:
        ex = pol.mask(seg, 5)
        n = seg.num_content_tokens
        assert ex.num_masked == max(1, math.floor(0.15 * n + 0.5))
        assert not ex.mask[0] and not ex.mask[-1]


def test_num_to_mask_rounds_half_up_and_at_least_one():
    assert num_to_mask(10, 0.15) == 2  # 1.5 -> 2
    assert num_to_mask(3, 0.15) == 1  # 0.45 -> 0 -> at least 1
    assert num_to_mask(1, 0.15) == 1
    assert num_to_mask(100, 0.15) == 15


def test_target_is_masked_runs_joined_by_mask(tok_info, many_segments):
    pol = policies.create("rand_v1", tok_info)
    for seg in many_segments[:500]:
        ex = pol.mask(seg, 1)
        runs, cur = [], []
        for t, m in zip(seg.input_ids, ex.mask):
            if m:
                cur.append(t)
            elif cur:
                runs.append(cur)
                cur = []
        expected = [tok_info.bos_id]
        for i, r in enumerate(runs):
            expected += ([tok_info.mask_id] if i else []) + r
        expected.append(tok_info.eos_id)
        assert list(ex.target_ids) == expected
        assert ex.source_ids.count(tok_info.mask_id) == len(runs)
        assert ex.format == "span"


def test_round_trip(tok_info, many_segments):
    pol = policies.create("rand_v1", tok_info)
    for seg in many_segments[:1000]:
        ex = pol.mask(seg, 2)
        assert fill_spans(ex.source_ids, ex.target_ids, tok_info) == list(seg.input_ids)


def test_positions_uniform(tok_info, many_segments):
    pol = policies.create("rand_v1", tok_info)
    first = middle = 0
    for seg in many_segments:
        m = pol.mask(seg, 3).mask
        first += m[1]
        middle += m[len(m) // 2]
    n = len(many_segments)
    # each position is masked with probability ~ k/n ~ 0.15
    assert abs(first / n - middle / n) < 0.04
    assert 0.11 < first / n < 0.2

import numpy as np
import pytest

import policies
from policies.ssm import find_entities
from tests.helpers import mask_with_entities


@pytest.fixture(scope="module")
def segs(many_segments):
    return many_segments[:300]


def _run(pol, segments, seed, ents=None):
    if ents is None:
        return pol.mask_batch(segments, seed)
    return mask_with_entities(pol, segments, seed, ents)


@pytest.mark.parametrize("name", ["orig_v1", "rand_v1", "ssm_v1"])
def test_same_seed_same_output_whole_shuffled_split(name, tok_info, segs, tokenizer):
    pol = policies.create(name, tok_info)
    ents = find_entities([s.text for s in segs]) if name == "ssm_v1" else None
    whole = {s.id: r for s, r in zip(segs, _run(pol, segs, 13, ents))}

    order = np.random.default_rng(0).permutation(len(segs))
    shuffled = [segs[i] for i in order]
    s_ents = [ents[i] for i in order] if ents else None
    for s, r in zip(shuffled, _run(pol, shuffled, 13, s_ents)):
        assert whole[s.id] == r

    for lo in range(0, len(segs), 37):  # uneven parts, a fresh policy object
        part = segs[lo : lo + 37]
        p_ents = ents[lo : lo + 37] if ents else None
        fresh = policies.create(name, tok_info)
        for s, r in zip(part, _run(fresh, part, 13, p_ents)):
            assert whole[s.id] == r


@pytest.mark.parametrize("name", ["orig_v1", "rand_v1"])
def test_different_seed_different_masks(name, tok_info, segs):
    pol = policies.create(name, tok_info)
    a = pol.mask_batch(segs, 1)
    b = pol.mask_batch(segs, 2)
    differ = sum(x.mask != y.mask or x.source_ids != y.source_ids for x, y in zip(a, b))
    assert differ > 0.9 * len(segs)


def test_ssm_different_seed_picks_other_entities(tok_info, tokenizer):
    from tests.helpers import bundled_texts, make_segments

    segs = make_segments(tokenizer, bundled_texts())
    pol = policies.create("ssm_v1", tok_info)
    ents = find_entities([s.text for s in segs])
    picks = {tuple(r.mask for r in mask_with_entities(pol, segs, seed, ents)) for seed in range(5)}
    assert len(picks) > 1


def test_does_not_touch_global_rng(tok_info, segs):
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    policies.create("orig_v1", tok_info).mask_batch(segs[:20], 0)
    assert np.random.random() == before

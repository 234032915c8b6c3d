import math

import numpy as np
import pytest

import policies
from maskpt.core.records import MaskedSegment
from policies.orig import OrigPolicy, sample_span_lengths
from tests.helpers import make_segments


@pytest.fixture(scope="module")
def orig(tok_info):
    return policies.create("orig_v1", tok_info)


@pytest.fixture(scope="module")
def results(orig, many_segments):
    return [(s, orig.plan(s, 7), orig.mask(s, 7)) for s in many_segments]


def _num_words(seg):
    return len({w for w in seg.word_ids if w >= 0})


def test_budget_is_ceil_30_percent_of_words(results):
    for seg, plan, _ in results:
        assert plan.num_words == _num_words(seg)
        assert sum(plan.span_lengths) == math.ceil(0.3 * plan.num_words)


def test_masks_about_30_percent_of_words_and_only_whole_words(results):
    masked_words = total_words = 0
    for seg, _, ex in results:
        wid = np.asarray(seg.word_ids)
        m = np.asarray(ex.mask)
        for w in np.unique(wid[wid >= 0]):
            tokens = m[wid == w]
            assert tokens.all() or not tokens.any(), f"{seg.id}: word {w} partly masked"
            masked_words += bool(tokens.any())
        total_words += _num_words(seg)
    ratio = masked_words / total_words
    # the budget is 30% (rounded up); spans that run into each other mask a
    # little less, as in fairseq
    assert 0.25 <= ratio <= 0.31, ratio


def test_span_length_draws_are_poisson_3():
    # with a budget far above the mean, trimming is negligible: the draws are Poisson(3)
    rng = np.random.default_rng(0)
    draws = np.array(sample_span_lengths(rng, 300_000, 3.0)[:-1])
    assert abs(draws.mean() - 3.0) < 0.02, draws.mean()
    assert abs((draws == 0).mean() - math.exp(-3)) < 0.002, (draws == 0).mean()
    assert abs(draws.var() - 3.0) < 0.05


def _poisson_cdf_below(b: int, lam: float) -> float:
    """P(X < b) for X ~ Poisson(lam)."""
    term, total = math.exp(-lam), 0.0
    for k in range(b):
        total += term
        term *= lam / (k + 1)
    return total


def test_number_of_spans_matches_poisson_renewal(results):
    # spans (zero-length included) are drawn until their lengths cover the budget b:
    # N = min{n : S_n >= b} with S_n ~ Poisson(3n), so E[N] = sum_n P(S_n < b) exactly
    observed, expected, zeros, n_draws = [], [], 0, 0
    for _, plan, _ in results:
        b = sum(plan.span_lengths)
        observed.append(len(plan.span_lengths))
        expected.append(1 + sum(_poisson_cdf_below(b, 3.0 * n) for n in range(1, 4 * b + 20)))
        zeros += sum(x == 0 for x in plan.span_lengths)
        n_draws += len(plan.span_lengths)
    observed, expected = np.array(observed), np.array(expected)
    stderr = observed.std() / math.sqrt(len(observed))
    assert abs(observed.mean() - expected.mean()) < 4 * stderr, (observed.mean(), expected.mean())
    assert 0.03 < zeros / n_draws < 0.12  # e^-3 = 0.05 before the stopping rule's bias


def test_sample_span_lengths_cover_budget_exactly():
    rng = np.random.default_rng(0)
    for budget in [1, 2, 5, 17, 40]:
        for _ in range(50):
            lengths = sample_span_lengths(rng, budget, 3.0)
            assert sum(lengths) == budget and all(x >= 0 for x in lengths)
            assert lengths[-1] > 0


def test_about_ten_percent_of_spans_are_random_tokens(results, tok_info):
    flags = np.concatenate([plan.random for _, plan, _ in results])
    assert abs(flags.mean() - 0.1) < 0.015, flags.mean()
    # in the sources: noise tokens (not copies of kept input tokens) are <mask> or non-special
    noise_random = noise = 0
    for seg, plan, ex in results:
        kept = [
            t
            for t, m in zip(np.asarray(seg.input_ids)[plan.perm], np.asarray(ex.mask)[plan.perm])
            if not m
        ]
        rest = _remove_subsequence(list(ex.source_ids), kept)
        assert all(t == tok_info.mask_id or t not in tok_info.special_ids for t in rest)
        n_spans = len(plan.starts) + len(plan.insert_random)
        assert (1 if ex.num_masked else 0) <= len(rest) <= n_spans
        noise += len(rest)
        noise_random += sum(t != tok_info.mask_id for t in rest)
    assert 0.08 <= noise_random / noise <= 0.12, noise_random / noise


def _remove_subsequence(seq, sub):
    """Remove `sub` from `seq` greedily in order; fail if it is not a subsequence."""
    out, j = [], 0
    for t in seq:
        if j < len(sub) and t == sub[j]:
            j += 1
        else:
            out.append(t)
    assert j == len(sub), "kept tokens are not in the source in order"
    return out


def test_target_is_original_and_format_full(results):
    for seg, _, ex in results:
        assert isinstance(ex, MaskedSegment)
        assert ex.target_ids == seg.input_ids and ex.format == "full"
        assert ex.source_ids[0] == seg.input_ids[0] and ex.source_ids[-1] == seg.input_ids[-1]


def test_sentences_permuted(tokenizer, tok_info):
    texts = ["Alpha one went home. Beta two stayed here. Gamma three came back." for _ in range(1)]
    seg = make_segments(tokenizer, texts)[0]
    pol = policies.create("orig_v1", tok_info, {"mask_ratio": 0.0})
    orders = [tuple(pol.plan(seg, s).order) for s in range(3000)]
    assert set(orders) == {p for p in __import__("itertools").permutations(range(3))}
    identity = sum(o == (0, 1, 2) for o in orders) / len(orders)
    assert abs(identity - 1 / 6) < 0.03
    # with no masking, the source is exactly the permuted sentences
    for s in range(20):
        ex, plan = pol.mask(seg, s), pol.plan(seg, s)
        assert list(ex.source_ids) == [seg.input_ids[i] for i in plan.perm]
        assert sorted(ex.source_ids) == sorted(seg.input_ids)


def test_no_permutation_when_disabled(tok_info, many_segments):
    pol = policies.create("orig_v1", tok_info, overrides=["permute_sentences=0"])
    for seg in many_segments[:200]:
        assert pol.plan(seg, 3).perm == list(range(len(seg.input_ids)))


def test_zero_length_spans_insert_tokens(tok_info, many_segments):
    pol = policies.create("orig_v1", tok_info, {"permute_sentences": 0.0, "random_ratio": 0.0})
    seen = 0
    for seg in many_segments[:1500]:
        plan = pol.plan(seg, 11)
        if len(plan.insert_random) and not len(plan.starts):
            continue
        ex = pol.mask(seg, 11)
        kept = sum(not m for m in ex.mask)
        # each span leaves at most one <mask>; each insert adds exactly one
        n_mask = ex.source_ids.count(tok_info.mask_id)
        assert len(ex.source_ids) == kept + n_mask
        assert n_mask <= len(plan.starts) + len(plan.insert_random)
        if len(plan.insert_random):
            seen += 1
            assert n_mask >= len(plan.insert_random) + 1
    assert seen > 50


def test_policy_class_registered():
    assert policies.get("orig_v1") is OrigPolicy

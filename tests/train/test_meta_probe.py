"""The answer probe: where answers are in a context, which examples are held
out, and the ratio of mask probabilities it reports."""

from __future__ import annotations

import pytest
import torch

from train.meta_probe import PROBE_MIN, answer_spans, build_probe, probe_ratio, split_probe
from train.policy_data import PolicyExample


def _examples(n: int, extractive: bool = True) -> list[PolicyExample]:
    cities = ["Lisbon", "Oslo", "Vienna", "Dublin"]
    out = []
    for i in range(n):
        city = cities[i % 4]
        context = f"Person {i} was born in {city} and works in music."
        target = city if extractive else "a city by the sea"
        out.append(PolicyExample(f"q{i}", context, f"Where was person {i} born?", target))
    return out


def test_answer_spans_find_the_target_with_and_without_a_leading_space(tokenizer):
    ids = tokenizer("Oslo is where Ann lives; Ann was born in Oslo.")["input_ids"]
    spans = answer_spans(tokenizer, ids, "Oslo")
    assert len(spans) == 2  # sentence-initial (no space) and after "in" (with one)
    for start, end in spans:
        assert tokenizer.decode(ids[start:end]).strip() == "Oslo"
    assert answer_spans(tokenizer, ids, "Paris") == []


def test_split_probe_is_stable_disjoint_and_complete():
    examples = _examples(40)
    train, held = split_probe(examples, 8, seed=0)
    assert len(held) == 8 and len(train) == 32
    assert {e.id for e in train}.isdisjoint({e.id for e in held})
    again_train, again_held = split_probe(list(reversed(examples)), 8, seed=0)
    assert {e.id for e in again_held} == {e.id for e in held}  # by id, not by position
    assert {e.id for e in split_probe(examples, 8, seed=1)[1]} != {e.id for e in held}
    assert split_probe(examples, 0) == (examples, [])


def test_probe_marks_answers_and_needs_extractive_examples(tokenizer):
    probe = build_probe(tokenizer, _examples(PROBE_MIN), 64)
    assert probe is not None and probe["examples"] == PROBE_MIN
    assert not (probe["answer"] & probe["other"]).any()
    for r in range(PROBE_MIN):
        answer = probe["ctx"][r][probe["answer"][r]].tolist()
        assert tokenizer.decode(answer).strip() in {"Lisbon", "Oslo", "Vienna", "Dublin"}
    # targets that are not spans of their contexts (WoW, WIQA, ...): no probe
    assert build_probe(tokenizer, _examples(20, extractive=False), 64) is None
    assert build_probe(tokenizer, _examples(PROBE_MIN - 1), 64) is None


class _Fixed(torch.nn.Module):
    """A policy with p(mask) = 0.3 on the given token ids and 0.1 elsewhere."""

    def __init__(self, ids):
        super().__init__()
        self.ids = torch.tensor(sorted(ids))

    def forward(self, x):
        hot = torch.isin(x, self.ids).float()
        p = 0.1 + 0.2 * hot
        return torch.stack([torch.log(1 - p), torch.log(p)], dim=-1)


def test_probe_ratio_reads_the_policys_preference(tokenizer):
    probe = build_probe(tokenizer, _examples(12), 64)
    answers = set(probe["ctx"][probe["answer"]].tolist())
    out = probe_ratio(_Fixed(answers), probe)
    assert out["probe_p_answer"] == pytest.approx(0.3, abs=1e-5)
    # other positions holding one of the answers' token ids (BPE pieces of the cities) get 0.3 too
    other_ids = probe["ctx"][probe["other"]]
    other_mean = (0.1 + 0.2 * torch.isin(other_ids, torch.tensor(sorted(answers))).float()).mean()
    assert out["probe_p_other"] == pytest.approx(other_mean.item(), abs=1e-5)
    assert out["probe_ratio"] == pytest.approx(0.3 / other_mean.item(), rel=1e-4)
    assert out["probe_ratio"] > 1.5
    blind = probe_ratio(_Fixed(set()), probe)
    assert blind["probe_ratio"] == pytest.approx(1.0, abs=1e-5)

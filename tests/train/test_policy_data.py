"""(c, s, t) examples for learned policies: answer location, the JSONL
reader, the supervised view, and TriviaQA's evidence reader."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from train.policy_data import PolicyExample, locate, located, read_jsonl
from train.policy_sources import read_tqa_evidence
from train.tasks import TaskDataError


def test_locate_case_insensitive_whole_words_longest_first():
    assert locate("In 1815 Ada was born.", ["1815"]) == (3, 7, "1815")
    assert locate("the Sunset Boulevard show", ["sunset", "Sunset Boulevard"]) == (
        4,
        20,
        "Sunset Boulevard",
    )
    assert locate("catalogue of cats", ["cat"]) is None  # only inside words
    assert locate("a cat", ["", "  ", "cat"]) == (2, 5, "cat")


def test_read_jsonl_keeps_every_example_and_located_counts_absent_targets(tmp_path):
    p = tmp_path / "ex.jsonl"
    p.write_text(
        json.dumps({"context": "Paris is big.", "answers": ["Rome", "paris"], "question": "q"})
        + "\n\n"
        + json.dumps({"context": "No answer here.", "source": "s", "target": "Oslo"})
        + "\n"
    )
    examples = read_jsonl(p, Counter())
    assert [(e.source, e.target) for e in examples] == [("q", "Rome"), ("s", "Oslo")]
    dropped = Counter()
    (ex,) = located(examples, dropped)
    assert (ex.answer, ex.start, ex.end, ex.question) == ("Paris", 0, 5, "q")
    assert dropped == {"answer_absent": 1}
    p.write_text('{"context": "x"}\n')
    with pytest.raises(TaskDataError, match=r"ex.jsonl:1: field 'target'"):
        read_jsonl(p, Counter())
    with pytest.raises(TaskDataError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl", Counter())


def test_read_tqa_evidence_fixture(tmp_path):
    ev = tmp_path / "evidence" / "wikipedia"
    ev.mkdir(parents=True)
    (ev / "Ada.txt").write_text("Ada Lovelace was a writer.\n\nShe was born in London in 1815.\n")
    data = {
        "Data": [
            {
                "QuestionId": "q1",
                "Question": "Where was Ada born?",
                "Answer": {"Value": "London", "Aliases": ["London, England"]},
                "EntityPages": [{"Filename": "Ada.txt"}],
            },
            {
                "QuestionId": "q2",
                "Question": "?",
                "Answer": {"Value": "Paris"},
                "EntityPages": [{"Filename": "Ada.txt"}, {"Filename": "Missing.txt"}],
            },
        ]
    }
    (tmp_path / "web-train.json").write_text(json.dumps(data))
    dropped = Counter()
    (ex,) = read_tqa_evidence(tmp_path, "train", dropped)
    assert ex == PolicyExample(
        "q1-Ada-1",
        "She was born in London in 1815.",
        "Where was Ada born?",
        "London",
        ("London", "London, England"),
    )
    assert dropped == {"answer_absent": 1, "evidence_missing": 1}
    with pytest.raises(TaskDataError, match="none of unfiltered-web-dev.json"):
        read_tqa_evidence(tmp_path, "dev", Counter())


def test_read_tqa_evidence_real_sample(shared_data):
    folder = shared_data / "tasks" / "trivia_qa"
    dropped = Counter()
    out = located(read_tqa_evidence(folder, "dev", dropped), Counter())  # web-dev.json first
    assert out and all(e.context[e.start : e.end].lower() == e.answer.lower() for e in out)
    n_questions = len(json.loads((folder / "web-dev.json").read_text())["Data"])
    answered = {e.id.rsplit("-", 2)[0] for e in out}
    assert len(answered) + dropped["answer_absent"] == n_questions  # every question accounted for

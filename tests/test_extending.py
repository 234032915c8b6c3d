"""docs/DESIGN.md's "Adding a policy" and "Adding a task", kept true: a policy and a
task defined and registered in this file alone run through preprocessing, the
trainer's per-epoch draw, fine-tuning and the results table, with no other file
of the project changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from maskpt.core.records import MaskedSegment, Segment
from maskpt.core.tokenizer import TokenizerInfo
from policies.base import Annotation, Policy, masked_span_example
from policies.registry import _REGISTRY, register
from preprocess.index import load_index
from preprocess.inspection import iter_rows, verify
from preprocess.remask import Remasker
from tests.helpers import make_shards
from train.tasks import TASKS, Task, TaskExample, iter_jsonl


@dataclass(frozen=True)
class FirstWordsConfig:
    words: int = 1
    """How many words, from the start of the segment, to mask."""

    def __post_init__(self) -> None:
        if self.words < 1:
            raise ValueError(f"words must be >= 1, got {self.words}")


class FirstWordsPolicy(Policy):
    """Masks the first `words` words, shifted by one word each epoch."""

    config_cls = FirstWordsConfig
    needs = frozenset({"words"})

    def draw(self, segment: Segment, ann: Annotation, seed: int, epoch: int) -> MaskedSegment:
        first = sorted({w for w in segment.word_ids if w >= 0})
        chosen = set(first[epoch % len(first) :][: self.config.words])
        return masked_span_example(self, segment, [w in chosen for w in segment.word_ids])


@pytest.fixture
def first_words_policy():
    register("first_words_v1")(FirstWordsPolicy)
    yield "first_words_v1"
    _REGISTRY.pop("first_words_v1")


def test_a_policy_in_one_class_is_preprocessed_verified_and_drawn_per_epoch(
    tmp_path, tokenizer, first_words_policy
):
    out = tmp_path / "shards"
    make_shards(out, tokenizer, policy=first_words_policy, policy_config={"words": 2})
    assert verify(out) == []
    index = load_index(out)
    assert index.policy.name == "first_words_v1" and index.policy.config == {"words": 2}
    remasker = Remasker(index, TokenizerInfo.from_tokenizer(tokenizer))
    _, _, row = next(iter_rows(out))
    epoch0, epoch1 = (remasker.draw(row, e) for e in (0, 1))
    assert epoch0["input_ids"] == row["input_ids"]  # the stored draw is epoch 0's
    assert epoch1["masked"] != epoch0["masked"]  # and the trainer draws each epoch anew
    assert epoch0["masked"][1] and not epoch1["masked"][1]  # the first word, then not


def parse_pairs(path: Path):
    """The toy task's files: {"q": question, "a": answer} per line."""
    for n, obj in iter_jsonl(path):
        yield TaskExample(f"{path.stem}-{n}", obj["q"], obj["a"], (obj["a"],))


def test_a_task_in_one_entry_fine_tunes_and_reports(tmp_path, tiny_bart, monkeypatch):
    from maskpt.cli import main
    from train.report import build, collect

    data = tmp_path / "pairs"
    data.mkdir()
    for split, n in (("train", 24), ("dev", 8), ("test", 8)):
        lines = [json.dumps({"q": f"colour of thing {i}", "a": "blue"}) for i in range(n)]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    files = {s: ((f"{s}.jsonl",), None) for s in ("train", "dev", "test")}
    monkeypatch.setitem(TASKS, "pairs", Task("pairs", "closed_book_qa", "em", files, parse_pairs))

    run = tmp_path / "runs" / "tiny_bart" / "pairs" / "seed0"  # what `maskpt sweep` lays out
    args = ["finetune", "--task", "pairs", "--data-dir", str(data), "--model", tiny_bart]
    args += ["--output-dir", str(run), "max_steps=2", "num_beams=1", "max_gen_length=4"]
    assert main([*args, "report_to=[none]"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_examples"] == 8 and 0.0 <= metrics["test"] <= 1.0
    table = build(collect([tmp_path / "runs"]))
    assert table["tasks"] == ["pairs"] and table["cells"]["tiny_bart/pairs"]["seeds"] == [0]

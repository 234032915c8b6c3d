"""Each task's own (c, s, t) for policy training, from fixtures in the
release formats (DPR, KILT with a knowledge source, ROPES, WIQA, QuaRTz,
TriviaQA): c is the dataset's context, s and t are the fine-tuning pair,
and no fine-tuning dev or test question is ever among them."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.train.task_fixtures import write_task
from train.policy_data import located
from train.policy_sources import (
    POLICY_TASKS,
    finetune_eval_keys,
    iter_json_array,
    normalise,
    task_examples,
)
from train.tasks import TaskDataError, load_split


def test_synth_examples_from_the_world_folder_or_its_qa_folder(tmp_path):
    from maskpt.world import WorldConfig, generate

    generate(WorldConfig(people=8, background_people=0, repeats=1), tmp_path / "w")
    for folder in (tmp_path / "w" / "qa", tmp_path / "w"):
        dropped = Counter()
        examples = task_examples("synth", folder, "", dropped)
        assert len(examples) == 32 and not dropped  # 4 train people x 8 questions
        held = {
            normalise(e.source)
            for s in ("dev", "test")
            for e in load_split("synth", tmp_path / "w" / "qa", s)
        }
        assert not {normalise(e.source) for e in examples} & held
        assert all(e.target in e.context for e in examples)
    with pytest.raises(TaskDataError, match="synth"):
        task_examples("synth", tmp_path / "elsewhere", "", Counter())


@pytest.mark.parametrize("task", [t for t in POLICY_TASKS if t != "synth"])
def test_policy_data_never_holds_a_finetuning_dev_or_test_question(tmp_path, task):
    folder = write_task(task, tmp_path / task, overlap=2)
    dropped = Counter()
    examples = task_examples(task, folder, "", dropped)
    assert examples and dropped["in_finetune_eval"] >= 2
    held = {normalise(e.source) for s in ("dev", "test") for e in load_split(task, folder, s)}
    held |= {e.id for s in ("dev", "test") for e in load_split(task, folder, s)}
    assert not {normalise(e.source) for e in examples} & held
    assert not {e.id for e in examples} & held
    train = {normalise(e.source): e for e in load_split(task, folder, "train")}
    for e in examples:
        assert e.context and e.source and e.target
        if task in ("ropes", "wiqa", "quartz", "zsre", "wow"):  # s, t as the fine-tuning recipe's
            assert train[normalise(e.source)].target == e.target


def test_kilt_context_is_the_provenance_paragraphs_and_drops_are_counted(tmp_path):
    folder = write_task("zsre", tmp_path / "zsre", overlap=0)
    dropped = Counter()
    examples = task_examples("zsre", folder, str(folder / "kilt_knowledgesource.json"), dropped)
    pages = {
        json.loads(x)["wikipedia_id"]: json.loads(x)["text"]
        for x in (folder / "kilt_knowledgesource.json").read_text().splitlines()
    }
    rows = {
        json.loads(x)["id"]: json.loads(x)
        for x in (folder / "structured_zeroshot-train-kilt.jsonl").read_text().splitlines()
    }
    for e in examples:
        prov = rows[e.id]["output"][0]["provenance"][0]
        text = pages[prov["wikipedia_id"]]
        assert e.context == " ".join(t.strip() for t in text[1:3])
    assert dropped == {"no_provenance": 1, "provenance_missing": 1}
    assert len(examples) == len(rows) - 2
    with pytest.raises(TaskDataError, match="knowledge source .* not found"):
        task_examples("zsre", folder, str(tmp_path / "nope.json"), Counter())


def test_supervised_takes_those_with_t_in_c(tmp_path):
    folder = write_task("wow", tmp_path / "wow", overlap=0)
    dropped = Counter()
    examples = task_examples("wow", folder, "", dropped)
    sup = located(examples, dropped)
    assert len(sup) + dropped["answer_absent"] == len(examples)
    assert dropped["answer_absent"] == len(examples)  # WoW responses are not in the page


def test_dpr_records_stream_and_the_fine_tuning_files_are_required(tmp_path):
    folder = write_task("nq", tmp_path / "nq", overlap=0)
    recs = list(iter_json_array(folder / "biencoder-nq-train.json.gz"))
    dropped = Counter()
    examples = task_examples("nq", folder, "", dropped)
    assert len(examples) == len(recs) - 1 and dropped == {"no_context": 1}
    assert examples[0].context == recs[0]["positive_ctxs"][0]["text"]
    (folder / "NQ-open.dev.jsonl").unlink()
    with pytest.raises(TaskDataError, match="NQ-open.dev.jsonl"):
        task_examples("nq", folder, "", Counter())
    with pytest.raises(TaskDataError, match="no policy-training reader for task 'ay2'"):
        task_examples("ay2", folder, "", Counter())


def test_kilt_readers_on_the_real_samples(shared_data, tmp_path):
    """The real zsRE and WoW train samples, with a knowledge source holding
    their cited pages (the real one is 35 GB)."""
    kilt = shared_data / "tasks" / "kilt"
    for task, prefix in (("zsre", "structured_zeroshot"), ("wow", "wow")):
        rows = [
            json.loads(x) for x in (kilt / f"{prefix}-train-kilt.jsonl").read_text().splitlines()
        ]
        pages = {}
        for r in rows:
            for o in r["output"]:
                for p in o.get("provenance") or []:
                    text = ["Title\n"] + [f"paragraph {k} of {p['title']}\n" for k in range(1, 40)]
                    pages[p["wikipedia_id"]] = {"wikipedia_id": p["wikipedia_id"], "text": text}
        folder = tmp_path / task
        folder.mkdir()
        for split in ("train", "dev"):
            (folder / f"{prefix}-{split}-kilt.jsonl").write_text(
                (kilt / f"{prefix}-{split}-kilt.jsonl").read_text()
            )
        ks = tmp_path / f"{task}-ks.jsonl"
        ks.write_text("".join(json.dumps(p) + "\n" for p in pages.values()))
        dropped = Counter()
        examples = task_examples(task, folder, str(ks), dropped)
        assert len(examples) + sum(dropped.values()) == len(rows)
        assert all(e.context.startswith("paragraph") for e in examples)
        assert finetune_eval_keys(task, folder)  # the dev file is what fine-tuning evaluates on

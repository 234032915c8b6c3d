import json

import pytest

from maskpt.cli import main
from train.metrics import choose, exact_match, mc_accuracy, normalize, token_f1
from train.tasks import TASKS, TaskDataError, load_split, parse_wq_target


def test_normalisation_and_em():
    assert normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize("an apple, a pear") == "apple pear"
    assert exact_match("the Beatles", ["Beatles"]) == 1.0
    assert exact_match("Paris.", ["London", "paris"]) == 1.0  # max over aliases
    assert exact_match("Paris France", ["Paris"]) == 0.0


def test_token_f1_hand_computed():
    # pred: cat sat mat ; gold: cat sat on mat -> p=3/3, r=3/4, f1=6/7
    assert token_f1("the cat sat mat", ["cat sat on the mat"]) == pytest.approx(6 / 7)
    assert token_f1("dog", ["cat", "dog barks"]) == pytest.approx(2 / 3)
    assert token_f1("", ["x"]) == 0.0


def test_multiple_choice_accuracy():
    choices = ["more", "less", "no effect"]
    assert choose("no effect", choices) == 2
    assert choose("there will be less", choices) == 1
    assert mc_accuracy("Less.", choices, "less") == 1.0
    assert mc_accuracy("more", choices, "less") == 0.0


def test_webquestions_target_value():
    v = '(list (description "Jamaican Creole English Language") (description Jamaican))'
    assert parse_wq_target(v) == ("Jamaican Creole English Language", "Jamaican")


def test_fixture_splits_and_errors(tmp_path):
    lines = [json.dumps({"question": f"q{i}", "answer": [f"a{i}", f"b{i}"]}) for i in range(6)]
    (tmp_path / "NQ-open.train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "NQ-open.dev.jsonl").write_text(lines[0] + "\n")
    task = TASKS["nq"]
    assert task.files["train"][1] == ("head", 79_168)
    train = load_split("nq", tmp_path, "train")
    assert [e.source for e in train] == [f"q{i}" for i in range(6)]  # fewer than 79,168: all
    assert load_split("nq", tmp_path, "dev") == []
    assert load_split("nq", tmp_path, "test")[0].answers == ("a0", "b0")
    (tmp_path / "NQ-open.dev.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(TaskDataError, match=r"NQ-open.dev.jsonl:1: field 'answer'"):
        load_split("nq", tmp_path, "test")
    with pytest.raises(TaskDataError, match="maskpt data download wiqa"):
        load_split("wiqa", tmp_path, "train")
    with pytest.raises(TaskDataError, match="unknown task"):
        load_split("squad", tmp_path, "train")


def test_ay2_fixture_kilt_format(tmp_path):
    rows = [
        {
            "id": f"ay{i}",
            "input": f"EU rejects [START_ENT] German [END_ENT] call {i}",
            "output": [{"answer": "Germany", "provenance": [{"title": "Germany"}]}],
        }
        for i in range(4)
    ]
    (tmp_path / "aidayago2-dev-kilt.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    dev, test = load_split("ay2", tmp_path, "dev"), load_split("ay2", tmp_path, "test")
    # KILT: the full dev set is both what selects and what is reported (the paper's Table 2)
    assert [e.id for e in dev] == [e.id for e in test] == ["ay0", "ay1", "ay2", "ay3"]
    assert dev[0].target == "Germany" and "[START_ENT]" in dev[0].source
    first = load_split("ay2", tmp_path, "dev", kilt_eval="halves")
    second = load_split("ay2", tmp_path, "test", kilt_eval="halves")
    assert [e.id for e in first + second] == ["ay0", "ay1", "ay2", "ay3"] and len(first) == 2
    with pytest.raises(TaskDataError, match="kilt_eval"):
        load_split("ay2", tmp_path, "dev", kilt_eval="thirds")


@pytest.mark.parametrize(
    ("task", "folder", "split", "count"),
    [
        ("nq", "natural_questions", "test", 3610),
        ("tqa", "trivia_qa", "test", 3),
        ("wq", "web_questions", "dev", 0),
        ("zsre", "kilt", "dev", 5),  # KILT: the full dev set (5 records in the sample)
        ("zsre", "kilt", "test", 5),
        ("wow", "kilt", "test", 5),
        ("ropes", "ropes", "dev", 4),
        ("ropes", "ropes", "test", 4),
        ("wiqa", "wiqa", "dev", 2),
        ("quartz", "quartz", "train", 2),
    ],
)
def test_real_samples(shared_data, task, folder, split, count):
    d = shared_data / "tasks" / folder
    if task == "wq":  # only the train file ships: train = the first 3,417, dev = the rest
        train = load_split(task, d, "train")
        assert len(train) == 2 and train[0].answers
        return
    examples = load_split(task, d, split)
    assert len(examples) == count
    for e in examples:
        assert e.source and e.target and e.target in e.answers
        if TASKS[task].kind == "multiple_choice" and task != "ropes":
            assert e.target in e.choices and " \\n (A) " in e.source


def test_tqa_all_aliases(shared_data):
    ex = load_split("tqa", shared_data / "tasks" / "trivia_qa", "test")[0]
    assert ex.answers[0] == "David Seville" and "david seville" in ex.answers


def test_data_show_cli(shared_data, capsys):
    assert (
        main(
            [
                "data",
                "show",
                "quartz",
                str(shared_data / "tasks" / "quartz"),
                "--split",
                "dev",
                "--n",
                "1",
                "--json",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    row = json.loads(out.out.splitlines()[0])
    assert row["choices"] and row["target"] in row["choices"]
    assert "quartz dev: 2 examples" in out.err


def test_every_list_of_task_names_agrees_with_TASKS():
    """A new task is one entry in train.tasks.TASKS (plus its download sources and, if a
    policy can learn from it, a reader in policy_sources): the lists users read agree."""
    import re

    from maskpt.commands.tasks import TASK_NAMES
    from maskpt.core.config import field_docs
    from train.download import SOURCES
    from train.finetune import FinetuneConfig
    from train.meta_policy import MetaConfig
    from train.policy_sources import POLICY_TASKS
    from train.report import TASK_ORDER
    from train.supervised_policy import SupervisedConfig
    from train.sweep import SweepConfig

    generated = {"synth"}  # made by `maskpt world`, nothing to download
    assert set(SOURCES) & set(TASKS) == set(TASKS) - generated
    assert TASK_NAMES.split() == [t for t in TASKS if t in SOURCES]
    assert list(TASKS) == TASK_ORDER
    assert set(POLICY_TASKS) <= set(TASKS)

    def named(doc: str) -> set[str]:
        return set(re.findall(r"\w+", doc)) & set(TASKS)

    assert named(field_docs(FinetuneConfig)["task"]) == set(TASKS)
    assert named(field_docs(SweepConfig)["tasks"]) == set(TASKS)
    for cls in (MetaConfig, SupervisedConfig):
        assert named(field_docs(cls)["task"]) == set(POLICY_TASKS), cls.__name__

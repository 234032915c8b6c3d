import json

import pytest

from maskpt.core.config import ConfigError
from maskpt.world import ATTRIBUTES, WorldConfig, generate, make_people


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate(WorldConfig(people=40, background_people=20, repeats=3, seed=3), out)
    return out


def test_same_seed_same_world_other_seed_other_world(world, tmp_path):
    generate(WorldConfig(people=40, background_people=20, repeats=3, seed=3), tmp_path / "a")
    assert _files(tmp_path / "a") == _files(world)
    generate(WorldConfig(people=40, background_people=20, repeats=3, seed=4), tmp_path / "b")
    assert (tmp_path / "b" / "corpus.jsonl").read_bytes() != (world / "corpus.jsonl").read_bytes()


def test_heldout_facts_only_in_the_pretraining_corpus(world):
    people = json.loads((world / "world.json").read_text())["people"]
    by_split = {
        s: {p["name"] for p in people if p["split"] == s}
        for s in ("train", "dev", "test", "background")
    }
    assert all(by_split.values()) and len(set.union(*by_split.values())) == len(people)
    train_text = (world / "qa" / "synth-train.jsonl").read_text() + (
        world / "policy_examples.jsonl"
    ).read_text()
    for name in by_split["dev"] | by_split["test"] | by_split["background"]:
        assert name not in train_text
    for split in ("dev", "test"):
        for q in _jsonl(world / "qa" / f"synth-{split}.jsonl"):
            assert q["meta"]["person"] in by_split[split]
            assert q["meta"]["person"] in q["input"]
    corpus = (world / "corpus.jsonl").read_text()
    assert not any(name in corpus for name in by_split["background"])
    background = (world / "background.jsonl").read_text()
    assert not any(name in background for name in by_split["test"] | by_split["train"])


def test_every_answer_is_recoverable_from_the_corpus(world):
    articles: dict = {}
    for doc in _jsonl(world / "corpus.jsonl"):
        articles.setdefault(doc["title"], []).append(doc["text"])
    for split in ("train", "dev", "test"):
        for q in _jsonl(world / "qa" / f"synth-{split}.jsonl"):
            person, answer = q["meta"]["person"], q["output"][0]["answer"]
            texts = articles[person]
            assert len(texts) == 3
            # every article states the fact, in a sentence naming the person
            for text in texts:
                assert any(answer in s and person in s for s in text.split(". "))


def test_qa_files_load_as_the_synth_task(world):
    from train.tasks import load_split

    test = load_split("synth", world / "qa", "test")
    assert len(test) == len(_jsonl(world / "qa" / "synth-test.jsonl")) > 0
    assert {ex.id.split("-")[1] for ex in test} == set(ATTRIBUTES)


def test_people_and_splits_follow_the_config():
    people = make_people(
        WorldConfig(people=20, background_people=5, train_fraction=0.5, dev_fraction=0.2)
    )
    counts = {
        s: sum(p["split"] == s for p in people) for s in ("train", "dev", "test", "background")
    }
    assert counts == {"train": 10, "dev": 4, "test": 6, "background": 5}
    assert len({p["name"] for p in people}) == 25


@pytest.mark.parametrize(
    "kwargs", [{"people": 2}, {"repeats": 0}, {"train_fraction": 0.9, "dev_fraction": 0.2}]
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ConfigError):
        WorldConfig(**kwargs)


def test_cli_writes_the_world(tmp_path, capsys):
    from maskpt.cli import main

    out = tmp_path / "w"
    assert main(["world", str(out), "--set", "people=8", "--set", "background_people=0"]) == 0
    assert '"qa_test"' in capsys.readouterr().out
    assert len(_jsonl(out / "corpus.jsonl")) == 8 * WorldConfig().repeats
    assert main(["world", str(out), "--set", "people=2"]) == 2  # refused with a clear error

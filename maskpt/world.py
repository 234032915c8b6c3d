"""A synthetic closed-book QA benchmark: a world of fictional people, written
as short encyclopedia-style articles, and questions about them.

Each person has four attributes (birth year, birthplace, employer, field).
The pre-training corpus holds `repeats` articles per person, each drawn
afresh: one sentence per attribute, a random template for each and the
sentences after the first shuffled. People are split into train / dev / test;
the fine-tuning files only ask about train people (dev and test about their
own), so the facts behind dev and test questions are only in the pre-training
corpus: the paper's closed-book setting in miniature. A disjoint set of
`background_people` gives a second corpus for a first stage of general
pre-training that teaches the language but none of the facts asked about.

On disk (`generate(cfg, out)`; everything is a function of the config, so the
same seed gives byte-identical files):

    OUT/world.json               the config and every person with attributes and split
    OUT/corpus.jsonl             {"id","title","text"}: the intermediate pre-training corpus
    OUT/background.jsonl         the same for the background people (general pre-training)
    OUT/qa/synth-{train,dev,test}.jsonl   {"id","input","output":[{"answer"}],"meta"}
    OUT/policy_examples.jsonl    {"context","question","answer"}: train people only,
                                 for training the learned policies
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import ConfigError
from maskpt.core.seeding import python_random

_ONSETS = [
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "th",
    "v",
    "w",
    "z",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "n", "r", "l", "s", "th", "m", "nd", "rk"]

CITIES = [
    "Lisbon",
    "Oslo",
    "Vienna",
    "Dublin",
    "Prague",
    "Madrid",
    "Warsaw",
    "Athens",
    "Cairo",
    "Lima",
    "Toronto",
    "Chicago",
    "Sydney",
    "Mumbai",
    "Nairobi",
    "Seoul",
    "Helsinki",
    "Budapest",
    "Boston",
    "Manila",
]
COMPANIES = [
    "Northwind Bank",
    "Corvid Motors",
    "Helix Pharma",
    "Bluestone Airlines",
    "Quarry Steel",
    "Lumen Software",
    "Harbor Shipping",
    "Atlas Insurance",
    "Pinecrest Foods",
    "Vantage Media",
    "Orion Telecom",
    "Granite Energy",
    "Silverline Rail",
    "Meridian Textiles",
    "Falcon Chemicals",
    "Cobalt Mining",
]
FIELDS = [
    "chemistry",
    "linguistics",
    "geology",
    "economics",
    "astronomy",
    "botany",
    "philosophy",
    "mathematics",
    "architecture",
    "medicine",
    "music",
    "history",
]
ATTRIBUTES = ("birth_year", "birthplace", "employer", "field")

# {n} = name, {v} = value. One sentence per attribute; five templates each.
TEMPLATES = {
    "birth_year": [
        "{n} was born in {v}.",
        "{n} was born in the year {v}.",
        "The birth of {n} took place in {v}.",
        "In {v}, {n} was born.",
        "{n}'s year of birth is {v}.",
    ],
    "birthplace": [
        "{n} was born in the city of {v}.",
        "{n} was born and raised in {v}.",
        "The birthplace of {n} is {v}.",
        "{n} comes from {v}.",
        "{n} is a native of {v}.",
    ],
    "employer": [
        "{n} works for {v}.",
        "{n} is employed by {v}.",
        "The employer of {n} is {v}.",
        "{n} joined {v} and still works there.",
        "{n} has a job at {v}.",
    ],
    "field": [
        "{n} works in the field of {v}.",
        "{n} is known for work in {v}.",
        "The field of {n} is {v}.",
        "{n} studied {v} and made a career of it.",
        "{n} is an expert in {v}.",
    ],
}
QUESTIONS = {
    "birth_year": ["When was {n} born?", "In what year was {n} born?"],
    "birthplace": ["Where was {n} born?", "What is the birthplace of {n}?"],
    "employer": ["Who does {n} work for?", "Which company employs {n}?"],
    "field": ["What field does {n} work in?", "What is {n} known for?"],
}


@dataclass(frozen=True)
class WorldConfig:
    people: int = 120
    """People asked about; their facts are in the intermediate pre-training corpus."""
    background_people: int = 120
    """Other people, only in the general pre-training corpus (0: no such corpus)."""
    repeats: int = 8
    """Articles per person in each corpus, each with fresh templates and sentence order."""
    train_fraction: float = 0.5
    """Share of the people whose questions are in the fine-tuning train split."""
    dev_fraction: float = 0.15
    """Share for dev; the rest are test."""
    seed: int = 0
    """Seed for names, attributes, templates and splits."""

    def __post_init__(self):
        if self.people < 4:
            raise ConfigError(f"world.people must be >= 4, got {self.people}")
        if self.background_people < 0 or self.repeats < 1:
            raise ConfigError("world.background_people must be >= 0 and world.repeats >= 1")
        if min(self.train_fraction, self.dev_fraction) <= 0 or (
            self.train_fraction + self.dev_fraction >= 1
        ):
            raise ConfigError(
                "world.train_fraction and dev_fraction must be > 0 and sum to less than 1"
            )


def _names(rng: random.Random, count: int) -> list[str]:
    def word() -> str:
        w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(2))
        return (w + rng.choice(_CODAS)).capitalize()

    seen: set[str] = set()
    out = []
    while len(out) < count:
        name = f"{word()} {word()}"
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def make_people(cfg: WorldConfig) -> list[dict]:
    """Every person (asked-about first, then background) with attributes and split."""
    rng = python_random("maskpt-world", cfg.seed)
    names = _names(rng, cfg.people + cfg.background_people)
    n_train = max(1, round(cfg.people * cfg.train_fraction))
    n_dev = max(1, round(cfg.people * cfg.dev_fraction))
    people = []
    for i, name in enumerate(names):
        split = (
            "background"
            if i >= cfg.people
            else "train"
            if i < n_train
            else "dev"
            if i < n_train + n_dev
            else "test"
        )
        people.append(
            {
                "name": name,
                "split": split,
                "birth_year": str(rng.randint(1850, 1999)),
                "birthplace": rng.choice(CITIES),
                "employer": rng.choice(COMPANIES),
                "field": rng.choice(FIELDS),
            }
        )
    return people


def article(person: dict, rng: random.Random) -> str:
    n = person["name"]
    sentences = [rng.choice(TEMPLATES[a]).format(n=n, v=person[a]) for a in ATTRIBUTES]
    rest = sentences[1:]
    rng.shuffle(rest)
    return " ".join([sentences[0], *rest])


def questions(person: dict, index: int) -> list[dict]:
    out = []
    for a in ATTRIBUTES:
        for k, template in enumerate(QUESTIONS[a]):
            out.append(
                {
                    "id": f"p{index}-{a}-{k}",
                    "input": template.format(n=person["name"]),
                    "output": [{"answer": person[a]}],
                    "meta": {"person": person["name"], "attribute": a},
                }
            )
    return out


def _write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _corpus(people: list[dict], repeats: int, seed: int, tag: str):
    rng = python_random("maskpt", tag, seed)
    for r in range(repeats):
        for i, p in enumerate(people):
            yield {"id": f"{tag}-{i}-{r}", "title": p["name"], "text": article(p, rng)}


def generate(cfg: WorldConfig, out: str | Path) -> dict:
    """Write the world's files to `out`; returns counts. Same config, same bytes."""
    out = Path(out)
    people = make_people(cfg)
    asked = [p for p in people if p["split"] != "background"]
    background = [p for p in people if p["split"] == "background"]
    counts = {
        "corpus_docs": _write_jsonl(
            out / "corpus.jsonl", _corpus(asked, cfg.repeats, cfg.seed, "w")
        ),
        "background_docs": _write_jsonl(
            out / "background.jsonl", _corpus(background, cfg.repeats, cfg.seed, "bg")
        ),
    }
    for split in ("train", "dev", "test"):
        rows = [q for i, p in enumerate(asked) if p["split"] == split for q in questions(p, i)]
        counts[f"qa_{split}"] = _write_jsonl(out / "qa" / f"synth-{split}.jsonl", rows)
    rng = python_random("maskpt-policy", cfg.seed)
    examples = []
    for i, p in enumerate(asked):
        if p["split"] != "train":
            continue
        for q in questions(p, i):
            a = q["meta"]["attribute"]
            examples.append(
                {
                    "id": q["id"],
                    "context": article(p, rng),
                    "question": q["input"],
                    "answer": p[a],
                }
            )
    counts["policy_examples"] = _write_jsonl(out / "policy_examples.jsonl", examples)
    world = {"config": asdict(cfg), "counts": counts, "people": people}
    (out / "world.json").write_text(json.dumps(world, indent=1) + "\n", encoding="utf-8")
    return counts


def config_args():
    return ConfigArgs(WorldConfig, "maskpt world", __doc__, positionals=(("out", "output folder"),))


def main(argv=None) -> int:
    cfg, ns = config_args().parse(argv)
    counts = generate(cfg, ns.out)
    print(f"wrote the synthetic world to {ns.out}: " + json.dumps(counts))
    return 0

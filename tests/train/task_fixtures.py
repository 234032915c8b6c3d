"""Small task folders in each release's own format, for the policy-data
tests: the fine-tuning files (train, dev, test as the recipe reads them) and
the files policy training reads (DPR, a KILT knowledge source). In each, the
first `overlap` training examples repeat a dev or test question, which the
policy readers must drop."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.helpers import synthetic_texts

WORDS = ["river", "stone", "winter", "garden", "lantern", "harbour", "meadow", "bridge"]


def _qa(n: int, seed: int, tag: str) -> list[tuple[str, str, str]]:
    """(context, question, answer): the answer is a word of the context."""
    out = []
    for i, text in enumerate(synthetic_texts(n, seed=seed, sentences=(2, 3))):
        word = WORDS[i % len(WORDS)]
        out.append((f"{text} The {tag} {i} is near the {word}.", f"where is the {tag} {i}", word))
    return out


def _jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_nq(folder: Path, n: int = 12, overlap: int = 2) -> None:
    qa = _qa(n + 6, 1, "lamp")
    train, test = qa[:n], qa[n:]  # NQ-open train (all of it "train" at this size), dev (= test)
    _jsonl(folder / "NQ-open.train.jsonl", [{"question": q, "answer": [a]} for _, q, a in train])
    _jsonl(folder / "NQ-open.dev.jsonl", [{"question": q, "answer": [a]} for _, q, a in test])
    dpr = [
        {
            "dataset": "nq",
            "question": q,
            "answers": [a],
            "positive_ctxs": [{"title": "t", "text": c, "passage_id": str(i)}],
            "negative_ctxs": [],
            "hard_negative_ctxs": [{"title": "x", "text": "no"}],
        }
        for i, (c, q, a) in enumerate(train)
    ]
    for c, q, a in test[:overlap]:  # repeats of evaluation questions
        dpr.append({"question": q, "answers": [a], "positive_ctxs": [{"text": c}]})
    dpr.append({"question": "no passage", "answers": ["x"], "positive_ctxs": []})
    with gzip.open(folder / "biencoder-nq-train.json.gz", "wt") as f:
        json.dump(dpr, f)


def write_tqa(folder: Path, n: int = 12, overlap: int = 2) -> None:
    """TriviaQA rc files with Wikipedia evidence, plus DPR's TriviaQA file."""
    qa = _qa(n + 6, 5, "tower")
    ev = folder / "evidence" / "wikipedia"
    ev.mkdir(parents=True, exist_ok=True)

    def q(i, c, text, a, split):
        (ev / f"{split}{i}.txt").write_text(f"Intro line.\n\n{c}\n")
        return {
            "QuestionId": f"{split}{i}",
            "Question": text,
            "Answer": {"Value": a, "Aliases": [a]},
            "EntityPages": [{"Filename": f"{split}{i}.txt"}],
        }

    train = [q(i, *x, "tr") for i, x in enumerate(qa[:n])]
    test = [q(i, *x, "te") for i, x in enumerate(qa[n:])]
    train += [{**t, "QuestionId": f"copy{k}"} for k, t in enumerate(test[:overlap])]
    (folder / "unfiltered-web-train.json").write_text(json.dumps({"Data": train}))
    (folder / "unfiltered-web-dev.json").write_text(json.dumps({"Data": test}))
    dpr = [
        {
            "question": t["Question"],
            "answers": [t["Answer"]["Value"]],
            "positive_ctxs": [{"text": (ev / t["EntityPages"][0]["Filename"]).read_text()}],
        }
        for t in train
    ]
    (folder / "biencoder-trivia-train.json").write_text(json.dumps(dpr))


def write_kilt(folder: Path, prefix: str, n: int = 12, overlap: int = 2, dialogue=False) -> None:
    qa = _qa(n + 6, 2, "bell")
    pages = []
    for split, part in (("train", qa[:n]), ("dev", qa[n:])):
        rows = []
        for i, (c, q, a) in enumerate(part):
            source = f"I like the bell.\nWhere is it? {q}" if dialogue else f"bell {i} [SEP] {q}"
            target = f"It is by the {a}, I think." if dialogue else a
            prov = [
                {
                    "wikipedia_id": f"{split}{i}",
                    "title": "T",
                    "start_paragraph_id": 1,
                    "end_paragraph_id": 2,
                    "start_character": 0,
                    "end_character": 5,
                }
            ]
            rows.append(
                {
                    "id": f"{split}-{i}",
                    "input": source,
                    "output": [{"answer": target, "provenance": prov}],
                }
            )
            half = len(c) // 2
            pages.append(
                {
                    "_id": f"p{split}{i}",
                    "wikipedia_id": f"{split}{i}",
                    "wikipedia_title": "T",
                    "text": ["T\n", c[:half] + "\n", c[half:] + "\n"],
                }
            )
        if split == "train":
            rows[0]["output"][0].pop("provenance")  # one without provenance
            rows[1]["output"][0]["provenance"][0]["wikipedia_id"] = "absent"
            dev_rows = None
        else:
            dev_rows = rows
        _jsonl(folder / f"{prefix}-{split}-kilt.jsonl", rows)
    train = [
        json.loads(x) for x in (folder / f"{prefix}-train-kilt.jsonl").read_text().splitlines()
    ]
    for k in range(overlap):
        train.append({**dev_rows[k], "id": f"copy-{k}"})  # same input as a dev example
    _jsonl(folder / f"{prefix}-train-kilt.jsonl", train)
    _jsonl(folder / "kilt_knowledgesource.json", pages)


def write_ropes(folder: Path, n: int = 12, overlap: int = 2) -> None:
    qa = _qa(n + 8, 3, "plant")

    def data(part, tag):
        paras = [
            {
                "background": c,
                "situation": f"Field {i} gets rain.",
                "qas": [{"id": f"{tag}{i}", "question": q, "answers": [{"text": a}]}],
            }
            for i, (c, q, a) in enumerate(part)
        ]
        return {"version": "1.0", "data": [{"title": "t", "paragraphs": paras}]}

    dev = data(qa[n:], "dev")
    train = data(qa[:n], "train")
    train["data"][0]["paragraphs"] += dev["data"][0]["paragraphs"][:overlap]
    (folder / "train-v1.0.json").write_text(json.dumps(train))
    (folder / "dev-v1.0.json").write_text(json.dumps(dev))


def write_mc(folder: Path, kind: str, n: int = 12, overlap: int = 2) -> None:
    """WIQA (question.para_steps) or QuaRTz (para) multiple choice."""
    qa = _qa(n + 6, 4, "seed")

    def rec(i, c, q, a, split):
        choices = [{"label": "A", "text": a}, {"label": "B", "text": "nowhere"}]
        if kind == "wiqa":
            return {
                "question": {"stem": q, "para_steps": c.split(". "), "choices": choices},
                "answerKey": "A",
                "metadata": {"ques_id": f"{split}{i}"},
            }
        return {
            "id": f"{split}{i}",
            "question": {"stem": q, "choices": choices},
            "para": c,
            "answerKey": "A",
        }

    splits = {"train": qa[:n], "dev": qa[n : n + 3], "test": qa[n + 3 :]}
    rows = {s: [rec(i, *x, s) for i, x in enumerate(part)] for s, part in splits.items()}
    rows["train"] += [
        {**r, "id": f"copy{k}", "metadata": {"ques_id": f"copy{k}"}}
        for k, r in enumerate((rows["dev"] + rows["test"])[:overlap])
    ]
    for s, r in rows.items():
        _jsonl(folder / f"{s}.jsonl", r)


def write_task(task: str, folder: Path, overlap: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if task == "nq":
        write_nq(folder, overlap=overlap)
    elif task == "tqa":
        write_tqa(folder, overlap=overlap)
    elif task in ("zsre", "wow"):
        prefix = "structured_zeroshot" if task == "zsre" else "wow"
        write_kilt(folder, prefix, overlap=overlap, dialogue=task == "wow")
    elif task == "ropes":
        write_ropes(folder, overlap=overlap)
    else:
        write_mc(folder, task, overlap=overlap)
    return folder

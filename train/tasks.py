"""The paper's nine downstream tasks, read from the files their releases ship
and turned into seq2seq examples: (source, target, gold answers[, choices]).

| task | files in DIR | splits (train / dev / test) |
|---|---|---|
| nq | NQ-open.train.jsonl, NQ-open.dev.jsonl | first 79,168 of train / rest of train / official dev |
| tqa | unfiltered-web-{train,dev}.json (or web-{train,dev}.json) | first 78,785 / rest / official dev |
| wq | webquestions.examples.{train,test}.json | first 3,417 / rest / official test |
| ay2, zsre, wow | {aidayago2,structured_zeroshot,wow}-{train,dev}-kilt.jsonl | train / dev / dev (`kilt_eval: halves`: first / second half of dev) |
| ropes | ropes train-v1.0.json, dev-v1.0.json | train / first half of dev / second half of dev |
| wiqa, quartz | {train,dev,test}.jsonl | train / dev / test |
| synth | synth-{train,dev,test}.jsonl (`maskpt/world.py`, KILT layout) | train / dev / test |

Closed-book QA splits follow T5's closed-book setup (the paper's Table 6);
TriviaQA's gold answers are all aliases. KILT's test sets are hidden: as the
paper (App. D.1, Table 2), the full dev set is what is reported, and it is
also the dev split that picks the checkpoint; `kilt_eval="halves"` instead
selects on the first half and reports the second (numbers not comparable to
the paper's Table 2). ROPES' dev is halved as the paper does.
Multiple-choice and ROPES use UnifiedQA's text-to-text encoding:
`question \\n (A) x (B) y \\n context`, target = the answer text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from maskpt.core.errors import UserError


class TaskDataError(UserError, ValueError):
    """A task file that is missing or malformed; the message names it."""


@dataclass(frozen=True)
class TaskExample:
    id: str
    source: str
    target: str
    answers: tuple[str, ...]
    choices: tuple[str, ...] = ()
    context: str = ""
    """The paragraph the dataset gives with the example (ROPES' background,
    WIQA's steps, QuaRTz' para), for learned policies' (c, s, t)."""
    provenance: tuple[str, int, int] | None = None
    """KILT: (wikipedia_id, first paragraph, last paragraph) of the first provenance."""


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # closed_book_qa | kilt | multiple_choice
    metric: str  # em | f1 | accuracy
    files: dict  # split -> (file names to try, slice rule)
    parse: Callable[[Path], Iterator[TaskExample]]


def find_file(dir_: Path, names: tuple[str, ...], task: str) -> Path:
    for n in names:
        if (dir_ / n).exists():
            return dir_ / n
    raise TaskDataError(
        f"{task}: none of {', '.join(names)} in {dir_} (fetch them with `maskpt data download "
        f"{task} {dir_}` where the network allows)"
    )


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line; a bad line is a TaskDataError."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise TaskDataError(f"{path}:{n}: not a JSON line ({exc})") from exc


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaskDataError(f"{path}: not valid JSON ({exc})") from exc


def _field(obj: dict, key: str, where: str, kind=str):
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, str | list) and not value):
        raise TaskDataError(f"{where}: field {key!r} missing or empty")
    return value


# --- parsers ---------------------------------------------------------------------


def parse_nq(path: Path) -> Iterator[TaskExample]:
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        answers = tuple(_field(obj, "answer", where, list))
        yield TaskExample(
            f"nq-{path.stem}-{n}", _field(obj, "question", where), answers[0], answers
        )


def parse_tqa(path: Path) -> Iterator[TaskExample]:
    data = read_json(path)
    for k, q in enumerate(_field(data, "Data", str(path), list)):
        where = f"{path}: Data[{k}]"
        ans = _field(q, "Answer", where, dict)
        aliases = [ans.get("Value", ""), *ans.get("Aliases", []), *ans.get("NormalizedAliases", [])]
        answers = tuple(dict.fromkeys(a for a in aliases if a))
        if not answers:
            raise TaskDataError(f"{where}: Answer has no Value or Aliases")
        yield TaskExample(
            str(q.get("QuestionId", k)), _field(q, "Question", where), answers[0], answers
        )


_WQ_DESC = re.compile(r'\(description (?:"((?:[^"\\]|\\.)*)"|([^()]*?))\)')


def parse_wq_target(value: str) -> tuple[str, ...]:
    """`(list (description X) (description "Y Z"))` -> ("X", "Y Z")."""
    out = tuple((m[0] or m[1]).replace('\\"', '"').strip() for m in _WQ_DESC.findall(value))
    return tuple(a for a in out if a)


def parse_wq(path: Path) -> Iterator[TaskExample]:
    for k, q in enumerate(read_json(path)):
        where = f"{path}: [{k}]"
        answers = parse_wq_target(_field(q, "targetValue", where))
        if not answers:
            raise TaskDataError(f"{where}: targetValue has no (description ...)")
        yield TaskExample(f"wq-{path.stem}-{k}", _field(q, "utterance", where), answers[0], answers)


def parse_kilt(path: Path) -> Iterator[TaskExample]:
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        outputs = _field(obj, "output", where, list)
        answers = tuple(
            dict.fromkeys(o["answer"] for o in outputs if isinstance(o, dict) and o.get("answer"))
        )
        if not answers:
            raise TaskDataError(f"{where}: output has no answer")
        yield TaskExample(
            str(obj.get("id", n)),
            _field(obj, "input", where),
            answers[0],
            answers,
            provenance=_first_provenance(outputs),
        )


def _first_provenance(outputs: list) -> tuple[str, int, int] | None:
    for o in outputs:
        for p in (o.get("provenance") or []) if isinstance(o, dict) else []:
            try:
                return (
                    str(p["wikipedia_id"]),
                    int(p["start_paragraph_id"]),
                    int(p["end_paragraph_id"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
    return None


def _mc_source(stem: str, choices: list[str], context: str) -> str:
    letters = " ".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    return f"{stem} \\n {letters}" + (f" \\n {context}" if context else "")


def parse_mc(path: Path) -> Iterator[TaskExample]:
    """WIQA and QuaRTz (question.stem, question.choices, answerKey; context in
    para_steps or para)."""
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        q = _field(obj, "question", where, dict)
        choices = _field(q, "choices", where, list)
        labels = [c.get("label") for c in choices]
        texts = [str(c.get("text", "")) for c in choices]
        key = obj.get("answerKey") or q.get("answer_label_as_choice")
        if key not in labels:
            raise TaskDataError(f"{where}: answer key {key!r} is not one of the choices {labels}")
        context = " ".join(q.get("para_steps") or []) or obj.get("para", "")
        answer = texts[labels.index(key)]
        ex_id = str(obj.get("id") or obj.get("metadata", {}).get("ques_id") or f"{path.stem}-{n}")
        yield TaskExample(
            ex_id,
            _mc_source(_field(q, "stem", where), texts, context),
            answer,
            (answer,),
            tuple(texts),
            context,
        )


def parse_ropes(path: Path) -> Iterator[TaskExample]:
    data = read_json(path)
    for a, article in enumerate(_field(data, "data", str(path), list)):
        for p, para in enumerate(article.get("paragraphs", [])):
            context = f"{para.get('situation', '')} {para.get('background', '')}".strip()
            for k, qa in enumerate(para.get("qas", [])):
                where = f"{path}: data[{a}].paragraphs[{p}].qas[{k}]"
                answers = tuple(
                    x["text"] for x in _field(qa, "answers", where, list) if x.get("text")
                )
                if not answers:
                    raise TaskDataError(f"{where}: no answer text")
                yield TaskExample(
                    str(qa.get("id", where)),
                    f"{_field(qa, 'question', where)} \\n {context}",
                    answers[0],
                    answers,
                    context=para.get("background", "") or context,
                )


# --- the task table ------------------------------------------------------------------

HALF_A, HALF_B = "first_half", "second_half"


def _kilt(prefix: str) -> dict:
    """The full dev set for dev and test (the paper's Table 2); halves on request."""
    dev = (f"{prefix}-dev-kilt.jsonl",)
    return {
        "train": ((f"{prefix}-train-kilt.jsonl",), None),
        "dev": (dev, ("kilt", HALF_A)),
        "test": (dev, ("kilt", HALF_B)),
    }


KILT_EVAL = ("full_dev", "halves")


def _cbqa(train: tuple, test: tuple, n_train: int) -> dict:
    return {
        "train": (train, ("head", n_train)),
        "dev": (train, ("tail", n_train)),
        "test": (test, None),
    }


TASKS = {
    "nq": Task(
        "nq",
        "closed_book_qa",
        "em",
        _cbqa(("NQ-open.train.jsonl",), ("NQ-open.dev.jsonl",), 79_168),
        parse_nq,
    ),
    "tqa": Task(
        "tqa",
        "closed_book_qa",
        "em",
        _cbqa(
            ("unfiltered-web-train.json", "web-train.json"),
            ("unfiltered-web-dev.json", "web-dev.json"),
            78_785,
        ),
        parse_tqa,
    ),
    "wq": Task(
        "wq",
        "closed_book_qa",
        "em",
        _cbqa(("webquestions.examples.train.json",), ("webquestions.examples.test.json",), 3_417),
        parse_wq,
    ),
    "ay2": Task("ay2", "kilt", "em", _kilt("aidayago2"), parse_kilt),
    "zsre": Task("zsre", "kilt", "em", _kilt("structured_zeroshot"), parse_kilt),
    "wow": Task("wow", "kilt", "f1", _kilt("wow"), parse_kilt),
    "ropes": Task(
        "ropes",
        "multiple_choice",
        "em",
        {
            "train": (("train-v1.0.json",), None),
            "dev": (("dev-v1.0.json",), HALF_A),
            "test": (("dev-v1.0.json",), HALF_B),
        },
        parse_ropes,
    ),
    "wiqa": Task(
        "wiqa",
        "multiple_choice",
        "accuracy",
        {s: ((f"{s}.jsonl",), None) for s in ("train", "dev", "test")},
        parse_mc,
    ),
    "quartz": Task(
        "quartz",
        "multiple_choice",
        "accuracy",
        {s: ((f"{s}.jsonl",), None) for s in ("train", "dev", "test")},
        parse_mc,
    ),
    "synth": Task(
        "synth",
        "closed_book_qa",
        "em",
        {s: ((f"synth-{s}.jsonl",), None) for s in ("train", "dev", "test")},
        parse_kilt,
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskDataError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}") from None


def load_split(
    name: str, folder: str | Path, split: str, kilt_eval: str = "full_dev"
) -> list[TaskExample]:
    """The examples of one split of a task, from a local folder of release files.
    KILT tasks evaluate on their full dev set (`kilt_eval="halves"`: the halves)."""
    task = get_task(name)
    if split not in task.files:
        raise TaskDataError(f"{name}: unknown split {split!r}; splits: {', '.join(task.files)}")
    if kilt_eval not in KILT_EVAL:
        raise TaskDataError(f"kilt_eval: one of {', '.join(KILT_EVAL)}, got {kilt_eval!r}")
    names, rule = task.files[split]
    examples = list(task.parse(find_file(Path(folder), names, name)))
    if isinstance(rule, tuple) and rule[0] == "kilt":
        rule = rule[1] if kilt_eval == "halves" else None
    if rule is None:
        return examples
    if rule == HALF_A:
        return examples[: len(examples) // 2]
    if rule == HALF_B:
        return examples[len(examples) // 2 :]
    how, n = rule
    return examples[:n] if how == "head" else examples[n:]

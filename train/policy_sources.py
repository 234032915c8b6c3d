"""Each task's own (c, s, t) for training learned policies, from its release
files, with c the dataset's own context:

| task | c | files in DIR |
|---|---|---|
| nq | DPR's first `positive_ctxs` passage | biencoder-nq-train.json[.gz] |
| tqa | DPR's first `positive_ctxs` passage, and/or each TriviaQA evidence paragraph holding an answer | biencoder-trivia-train.json[.gz]; unfiltered-web-train.json + evidence/wikipedia/ |
| zsre, wow | the KILT provenance paragraphs | {structured_zeroshot,wow}-train-kilt.jsonl + the KILT knowledge source |
| ropes | the background paragraph | train-v1.0.json |
| wiqa | the process steps | train.jsonl |
| quartz | the paragraph | train.jsonl |
| synth | an article about the person asked about | the world's policy_examples.jsonl, in DIR or its parent (DIR: the world's `qa/`, as fine-tuning takes it, or the world folder) |

s and t are the fine-tuning source and target (the same text the
fine-tuning recipe trains on). The knowledge source is KILT's
`kilt_knowledgesource.json` (one page per line: wikipedia_id and its
paragraphs; `knowledge_source` or DIR/kilt_knowledgesource.json): it is
streamed once and only the cited paragraphs are kept.

An example whose source is one of the fine-tuning recipe's dev or test
questions (or shares its id) is dropped (`in_finetune_eval`), so policy
training never sees what model selection and the reported score use; the
fine-tuning files must be in DIR for that check. Other drops: `no_context`
(DPR record without a positive passage), `no_provenance`,
`provenance_missing` (page or paragraph absent from the knowledge source),
`answer_absent` and `evidence_missing` (TriviaQA evidence).
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from train.policy_data import PolicyExample, locate, read_jsonl
from train.tasks import TaskDataError, find_file, load_split, parse_kilt, read_json

POLICY_TASKS = ("nq", "tqa", "zsre", "wow", "ropes", "wiqa", "quartz", "synth")
SYNTH_EXAMPLES = "policy_examples.jsonl"
DPR_FILES = {"nq": "biencoder-nq-train.json", "tqa": "biencoder-trivia-train.json"}
KILT_TRAIN = {"zsre": "structured_zeroshot-train-kilt.jsonl", "wow": "wow-train-kilt.jsonl"}
KNOWLEDGE_SOURCE = "kilt_knowledgesource.json"


def load_examples(
    examples: str, task: str, data_dir: str, knowledge_source: str, dropped: Counter
) -> list[PolicyExample]:
    """From a JSONL file, or from a task's own files (its fine-tuning dev and
    test questions excluded)."""
    if examples:
        return read_jsonl(examples, dropped)
    if not task or not data_dir:
        raise TaskDataError("give examples (a JSONL file), or task and data_dir")
    return task_examples(task, data_dir, knowledge_source, dropped)


def task_examples(
    task: str, folder, knowledge_source: str, dropped: Counter
) -> list[PolicyExample]:
    """The (c, s, t) of `task` from DIR, fine-tuning dev and test excluded."""
    folder = Path(folder)
    if task not in POLICY_TASKS:
        raise TaskDataError(
            f"no policy-training reader for task {task!r}; tasks: {', '.join(POLICY_TASKS)} "
            "(or write a JSONL of context, source, target and pass it as examples)"
        )
    if task == "synth" and not (folder / "synth-dev.jsonl").exists() and (folder / "qa").is_dir():
        folder = folder / "qa"  # the world folder given: its fine-tuning files are in qa/
    held_out = finetune_eval_keys(task, folder)
    if task == "synth":
        examples = read_jsonl(_synth_examples(folder), dropped)
    elif task in DPR_FILES:
        examples = _closed_book(task, folder, dropped)
    elif task in KILT_TRAIN:
        ks = Path(knowledge_source) if knowledge_source else folder / KNOWLEDGE_SOURCE
        examples = read_kilt(find_file(folder, (KILT_TRAIN[task],), task), ks, dropped)
    else:
        examples = [
            PolicyExample(e.id, e.context, e.source, e.target, e.answers)
            for e in load_split(task, folder, "train")
        ]
    kept = []
    for e in examples:
        if e.id in held_out or normalise(e.source) in held_out:
            dropped["in_finetune_eval"] += 1
        else:
            kept.append(e)
    return kept


def _synth_examples(qa: Path) -> Path:
    for path in (qa / SYNTH_EXAMPLES, qa.parent / SYNTH_EXAMPLES):
        if path.is_file():
            return path
    raise TaskDataError(
        f"synth: no {SYNTH_EXAMPLES} in {qa} or {qa.parent} (`maskpt world` "
        "writes it beside the world's qa/ folder)"
    )


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def finetune_eval_keys(task: str, folder: Path) -> set[str]:
    """Ids and normalised sources of the fine-tuning dev and test splits
    (KILT: its dev set and both halves alike)."""
    keys = set()
    for split in ("dev", "test"):
        for e in load_split(task, folder, split):
            keys.update((e.id, normalise(e.source)))
    return keys


def _closed_book(task: str, folder: Path, dropped: Counter) -> list[PolicyExample]:
    dpr = next(
        (p for p in (folder / DPR_FILES[task], folder / f"{DPR_FILES[task]}.gz") if p.exists()),
        None,
    )
    out = read_dpr(dpr, dropped) if dpr else []
    has_evidence = (folder / "evidence" / "wikipedia").is_dir() or (
        folder / "evidence_wikipedia"
    ).is_dir()
    if task == "tqa" and has_evidence:
        out += read_tqa_evidence(folder, "train", dropped)
    if dpr is None and not (task == "tqa" and has_evidence):
        raise TaskDataError(
            f"{task}: no {DPR_FILES[task]}[.gz] in {folder}"
            + (" and no TriviaQA evidence/wikipedia/ folder" if task == "tqa" else "")
            + f" (fetch them with `maskpt data download {task} {folder}` where the network allows)"
        )
    return out


def iter_json_array(path: Path) -> Iterator[dict]:
    """The elements of a (possibly gzipped) JSON array, one at a time (DPR's
    files are gigabytes: never loaded whole)."""
    decoder = json.JSONDecoder()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        buf, pos = "", 0

        def fill() -> bool:  # keep what is unread, add a chunk; False at the end
            nonlocal buf, pos
            chunk = f.read(1 << 20)
            buf, pos = buf[pos:] + chunk, 0
            return bool(chunk)

        def skip(chars: str) -> bool:  # past `chars`; False when nothing is left
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in chars:
                    pos += 1
                if pos < len(buf) or not fill():
                    return pos < len(buf)

        if not skip(" \t\r\n") or buf[pos] != "[":
            raise TaskDataError(f"{path}: not a JSON array")
        pos += 1
        for n in itertools.count():
            if not skip(" \t\r\n,"):
                raise TaskDataError(f"{path}: ends before the array closes (after {n} elements)")
            if buf[pos] == "]":
                return
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                    break
                except json.JSONDecodeError as exc:
                    if not fill():
                        raise TaskDataError(f"{path}: element {n}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise TaskDataError(f"{path}: element {n} is not an object")
            pos = end
            yield obj


def read_dpr(path: Path, dropped: Counter) -> list[PolicyExample]:
    """DPR retriever-training records: question, answers, positive_ctxs."""
    out = []
    for n, rec in enumerate(iter_json_array(path)):
        question = rec.get("question")
        answers = tuple(a for a in rec.get("answers") or [] if isinstance(a, str) and a.strip())
        if not isinstance(question, str) or not question.strip() or not answers:
            raise TaskDataError(f"{path}: element {n}: field 'question' or 'answers' missing")
        positives = [c for c in rec.get("positive_ctxs") or [] if (c or {}).get("text")]
        if not positives:
            dropped["no_context"] += 1
            continue
        out.append(
            PolicyExample(
                f"dpr-{path.name.split('.')[0]}-{n}",
                positives[0]["text"],
                question,
                answers[0],
                answers,
            )
        )
    return out


def read_tqa_evidence(folder: Path, split: str, dropped: Counter) -> list[PolicyExample]:
    """One example per TriviaQA Wikipedia evidence paragraph holding an answer alias."""

    names = (f"unfiltered-web-{split}.json", f"web-{split}.json", f"wikipedia-{split}.json")
    path = find_file(folder, names, "tqa")
    evidence = next(
        (
            d
            for d in (folder / "evidence" / "wikipedia", folder / "evidence_wikipedia")
            if d.is_dir()
        ),
        None,
    )
    if evidence is None:
        raise TaskDataError(f"tqa: no evidence/wikipedia/ folder in {folder}")
    out = []
    for q in read_json(path).get("Data", []):
        ans = q.get("Answer", {})
        answers = tuple(a for a in [ans.get("Value", ""), *ans.get("Aliases", [])] if a)
        found = False
        for page in q.get("EntityPages", []):
            file = evidence / page.get("Filename", "")
            if not file.is_file():
                dropped["evidence_missing"] += 1
                continue
            paragraphs = [p for p in file.read_text(errors="replace").split("\n") if p.strip()]
            for k, para in enumerate(paragraphs):
                if locate(para, answers):
                    found = True
                    out.append(
                        PolicyExample(
                            f"{q.get('QuestionId')}-{file.stem}-{k}",
                            para,
                            q.get("Question", ""),
                            answers[0],
                            answers,
                        )
                    )
        if not found:
            dropped["answer_absent"] += 1
    return out


_WIKI_ID = re.compile(r'"wikipedia_id"\s*:\s*"?(\w+)')


def read_kilt(path: Path, knowledge_source: Path, dropped: Counter) -> list[PolicyExample]:
    """KILT train records with their first provenance's paragraphs as c."""

    records = list(parse_kilt(path))
    wanted: dict[str, set[int]] = {}
    for e in records:
        if e.provenance:
            page, first, last = e.provenance
            wanted.setdefault(page, set()).update(range(first, last + 1))
    paragraphs = _cited_paragraphs(knowledge_source, wanted) if wanted else {}
    out = []
    for e in records:
        if not e.provenance:
            dropped["no_provenance"] += 1
            continue
        page, first, last = e.provenance
        text = [paragraphs.get((page, k)) for k in range(first, last + 1)]
        if any(t is None for t in text):
            dropped["provenance_missing"] += 1
            continue
        out.append(PolicyExample(e.id, " ".join(text), e.source, e.target, e.answers))
    return out


def _cited_paragraphs(path: Path, wanted: dict[str, set[int]]) -> dict[tuple[str, int], str]:
    """One pass over the knowledge source, keeping only the cited paragraphs."""
    if not path.is_file():
        raise TaskDataError(
            f"KILT knowledge source {path} not found: pass knowledge_source=PATH (KILT's "
            f"{KNOWLEDGE_SOURCE}; `maskpt data download kilt_knowledge_source DIR` fetches it)"
        )
    out = {}
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            head = _WIKI_ID.search(raw[:400].decode("utf-8", "replace"))
            if head and head.group(1) not in wanted:
                continue  # not cited: skip without parsing the page
            try:
                page = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise TaskDataError(f"{path}:{n}: not a JSON line ({exc})") from exc
            pid = str(page.get("wikipedia_id", ""))
            texts = page.get("text") or []
            for k in wanted.get(pid, ()):
                if 0 <= k < len(texts) and isinstance(texts[k], str):
                    out[(pid, k)] = texts[k].strip()
    return out

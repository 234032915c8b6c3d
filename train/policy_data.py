"""(context, question, answer) examples for training learned policies.

Sources:
- a JSONL file of {"context", "answer" or "answers", optional "question"}
  (any task: write your own, or the demo's synthetic world);
- TriviaQA's rc release: question + the Wikipedia evidence files its
  `EntityPages` name (DIR/evidence/wikipedia/ or DIR/evidence_wikipedia/),
  one example per paragraph that contains an answer alias.

Examples whose answer does not occur in the context are dropped and counted
(`answer_absent`), as are answers longer than the span limit.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from train.tasks import TaskDataError


@dataclass(frozen=True)
class QAContext:
    id: str
    context: str
    question: str
    answer: str
    start: int  # answer's character span in the context
    end: int


def locate(context: str, answers) -> tuple[int, int, str] | None:
    """First case-insensitive occurrence of any answer (longest first) at word boundaries."""
    low = context.lower()
    for a in sorted({a for a in answers if a and a.strip()}, key=len, reverse=True):
        k = low.find(a.lower())
        while k >= 0:
            before = k == 0 or not low[k - 1].isalnum()
            after = k + len(a) == len(low) or not low[k + len(a)].isalnum()
            if before and after:
                return k, k + len(a), context[k : k + len(a)]
            k = low.find(a.lower(), k + 1)
    return None


def read_jsonl(path: str | Path, dropped: Counter) -> list[QAContext]:
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: no such file")
    out = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise TaskDataError(f"{path}:{n}: not a JSON line ({exc})") from exc
            context = obj.get("context")
            answers = obj.get("answers") or ([obj["answer"]] if obj.get("answer") else [])
            if not isinstance(context, str) or not context.strip():
                raise TaskDataError(f"{path}:{n}: field 'context' missing or empty")
            if not answers:
                raise TaskDataError(f"{path}:{n}: field 'answer' (or 'answers') missing or empty")
            hit = locate(context, answers)
            if hit is None:
                dropped["answer_absent"] += 1
                continue
            out.append(QAContext(str(obj.get("id", n)), context, obj.get("question", ""),
                                 hit[2], hit[0], hit[1]))  # fmt: skip
    return out


def read_triviaqa(folder: str | Path, split: str, dropped: Counter) -> list[QAContext]:
    from train.tasks import find_file, read_json

    folder = Path(folder)
    names = (f"unfiltered-web-{split}.json", f"web-{split}.json", f"wikipedia-{split}.json")
    path = find_file(folder, names, "tqa")
    evidence = next((d for d in (folder / "evidence" / "wikipedia", folder / "evidence_wikipedia")
                     if d.is_dir()), None)  # fmt: skip
    if evidence is None:
        raise TaskDataError(f"tqa: no evidence/wikipedia/ folder in {folder}")
    out = []
    for q in read_json(path).get("Data", []):
        ans = q.get("Answer", {})
        answers = [ans.get("Value", ""), *ans.get("Aliases", [])]
        found = False
        for page in q.get("EntityPages", []):
            file = evidence / page.get("Filename", "")
            if not file.is_file():
                dropped["evidence_missing"] += 1
                continue
            for k, para in enumerate(
                p for p in file.read_text(errors="replace").split("\n") if p.strip()
            ):
                hit = locate(para, answers)
                if hit:
                    found = True
                    out.append(QAContext(f"{q.get('QuestionId')}-{file.stem}-{k}", para,
                                         q.get("Question", ""), hit[2], hit[0], hit[1]))  # fmt: skip
        if not found:
            dropped["answer_absent"] += 1
    return out

"""(c, s, t) examples for training learned policies.

The paper (§3.2): each example is "a source-target pair (s, t), accompanied
with a context paragraph c provided by the dataset". The meta-learned policy
(`meta_v1`) trains on all of them: it masks c, pre-trains on it, then
fine-tunes on s -> t. The supervised policy (`sup_v1`, §4.2) trains on those
where t occurs in c (`located`; the rest are counted as `answer_absent`).

Sources: a JSONL file of {"context", "source" (or "question"), "target" (or
"answer" / "answers")} — any task: write your own, or the demo's synthetic
world — or a task's own release files (`train/policy_sources.py`: NQ and
TriviaQA through DPR, zsRE and WoW through KILT provenance, ROPES, WIQA and
QuaRTz through their paragraphs). Every record read is kept or counted as
dropped with its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from train.tasks import TaskDataError, iter_jsonl


@dataclass(frozen=True)
class PolicyExample:
    """One (c, s, t)."""

    id: str
    context: str
    """c: the paragraph the dataset provides with the example."""
    source: str
    """s: the fine-tuning input (as the fine-tuning recipe encodes it)."""
    target: str
    """t: the fine-tuning output."""
    answers: tuple[str, ...] = ()
    """Every gold target (aliases); `located` looks for any of them in c."""


@dataclass(frozen=True)
class QAContext:
    """A (c, s, t) whose target was found in the context: the span the
    supervised policy learns to extract."""

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


def located(examples: list[PolicyExample], dropped: Counter) -> list[QAContext]:
    """The examples whose target (or an alias) occurs in their context."""
    out = []
    for e in examples:
        hit = locate(e.context, e.answers or (e.target,))
        if hit is None:
            dropped["answer_absent"] += 1
            continue
        out.append(QAContext(e.id, e.context, e.source, hit[2], hit[0], hit[1]))
    return out


def read_jsonl(path: str | Path, dropped: Counter) -> list[PolicyExample]:
    """{"context", "source"|"question", "target"|"answer"|"answers"} per line."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: no such file")
    out = []
    for n, obj in iter_jsonl(path):
        context = obj.get("context")
        answers = obj.get("answers") or [obj.get("target") or obj.get("answer") or ""]
        answers = tuple(a for a in answers if isinstance(a, str) and a.strip())
        if not isinstance(context, str) or not context.strip():
            raise TaskDataError(f"{path}:{n}: field 'context' missing or empty")
        if not answers:
            raise TaskDataError(
                f"{path}:{n}: field 'target' (or 'answer', 'answers') missing or empty"
            )
        source = obj.get("source") or obj.get("question") or ""
        out.append(PolicyExample(str(obj.get("id", n)), context, source, answers[0], answers))
    return out

"""Downstream metrics, as the tasks define them.

- Exact match with SQuAD-style normalisation (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), max over gold answers:
  closed-book QA, AY2, zsRE.
- Token F1 over normalised tokens, max over gold answers: Wizard of Wikipedia.
- Accuracy for multiple choice: the prediction is matched to the choice text
  it overlaps most (exact match first, then token F1), and that choice is
  compared with the gold one.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    p = normalize(prediction)
    return float(any(p == normalize(a) for a in answers))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    p = normalize(prediction).split()
    return max((_f1(p, normalize(a).split()) for a in answers), default=0.0)


def choose(prediction: str, choices: Sequence[str]) -> int:
    """Index of the choice the prediction names (exact match, else best F1)."""
    for i, c in enumerate(choices):
        if exact_match(prediction, [c]):
            return i
    scores = [token_f1(prediction, [c]) for c in choices]
    return max(range(len(choices)), key=lambda i: scores[i])


def mc_accuracy(prediction: str, choices: Sequence[str], answer: str) -> float:
    return float(normalize(choices[choose(prediction, choices)]) == normalize(answer))


METRICS = {"em": exact_match, "f1": token_f1}

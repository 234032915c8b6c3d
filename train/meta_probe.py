"""What a masking policy has learned, measured on the property itself: does
it put more mask probability on the answer than on the rest of the context?

    ratio = mean p(mask) over answer tokens / mean p(mask) over other content tokens

over held-out (context, source, target) examples whose target occurs in the
context (its tokens with or without a leading space, as BPE writes a word
inside a sentence). 1.0 is a policy blind to answers; above 1 it prefers
them. The held-out examples are chosen by a stable hash of their id, so the
same examples are held out on every run and never trained on.

The probe applies to extractive data: the synthetic world (every answer is
in its article), NQ and TriviaQA (DPR's positive passage, TriviaQA evidence
holding an answer), zsRE's provenance paragraph where it spells the answer.
It does not apply where targets are not spans of the context (WoW's
responses, WIQA's and QuaRTz's choices, ROPES' situations): there no probe
is built and the log says so.
"""

from __future__ import annotations

import hashlib

import torch

from maskpt.core.batching import pad_ids

PROBE_MIN = 8
"""Fewer extractive held-out examples than this: no probe (too noisy to read)."""


def _key(example_id: str, seed: int) -> str:
    return hashlib.sha256(f"meta-probe/{seed}/{example_id}".encode()).hexdigest()


def answer_spans(tok, context_ids: list[int], target: str) -> list[tuple[int, int]]:
    """(start, end) positions where the target's tokens occur in the context
    ids, written with a leading space or without."""
    spans = []
    for text in (" " + target.strip(), target.strip()):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        n = len(ids)
        if not n:
            continue
        for i in range(len(context_ids) - n + 1):
            if context_ids[i : i + n] == ids:
                spans.append((i, i + n))
    return sorted(set(spans))


def split_probe(examples: list, count: int, seed: int = 0) -> tuple[list, list]:
    """(train, held out): the `count` examples with the smallest hash of their
    id held out; none when count is 0."""
    if count <= 0:
        return list(examples), []
    order = sorted(range(len(examples)), key=lambda i: _key(examples[i].id, seed))
    held = set(order[:count])
    return (
        [e for i, e in enumerate(examples) if i not in held],
        [e for i, e in enumerate(examples) if i in held],
    )


def build_probe(tok, examples: list, max_length: int) -> dict | None:
    """Tensors for `probe_ratio`: the contexts and where their answers are;
    None when fewer than PROBE_MIN examples have their target in the context."""

    rows, answers = [], []
    for e in examples:
        ids = tok(e.context, truncation=True, max_length=max_length)["input_ids"]
        spans = answer_spans(tok, ids, e.target)
        if spans:
            rows.append(ids)
            answers.append(spans)
    if len(rows) < PROBE_MIN:
        return None
    ids, att = pad_ids(rows, tok.pad_token_id)
    special = torch.tensor([tok.bos_token_id, tok.eos_token_id, tok.pad_token_id])
    content = ~torch.isin(ids, special)
    is_answer = torch.zeros_like(content)
    for r, spans in enumerate(answers):
        for start, end in spans:
            is_answer[r, start:end] = True
    return {
        "ctx": ids,
        "answer": is_answer & content,
        "other": content & ~is_answer,
        "examples": len(rows),
    }


@torch.no_grad()
def mask_probabilities(masker, ids: torch.Tensor) -> torch.Tensor:
    """p(mask) per token [B, L] under the policy, in eval mode."""
    was = masker.training
    masker.eval()
    p = torch.softmax(masker(ids).float(), dim=-1)[..., 1]
    masker.train(was)
    return p


def probe_ratio(masker, probe: dict) -> dict:
    """The ratio and its two means."""
    p = mask_probabilities(masker, probe["ctx"])
    answer, other = p[probe["answer"]].mean().item(), p[probe["other"]].mean().item()
    return {
        "probe_ratio": answer / max(other, 1e-12),
        "probe_p_answer": answer,
        "probe_p_other": other,
    }

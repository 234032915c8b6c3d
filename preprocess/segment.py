"""Cut a document into segments of at most `max_length` tokens.

The document is tokenized once; segments are slices of that token stream, so
every token of the document lands in exactly one segment (whitespace-only
tokens at segment edges are dropped). Whole sentences are packed greedily
until the next one would not fit; a sentence longer than the budget is cut
between words; a single word longer than the budget cannot be cut without
splitting it and is skipped with reason `word_too_long`.

Segment ids are `{doc_id}-{n}`, n counting from 0 in document order: a pure
function of the document text, the tokenizer and `max_length`.
"""

from __future__ import annotations

from collections.abc import Iterator

from maskpt.core.records import Segment, Skip
from maskpt.core.tokenizer import (
    TokenizerInfo,
    build_segment,
    sentence_starts,
    tokenize_text,
    word_starts,
)


def _runs(flags: list[bool], lo: int, hi: int) -> list[tuple[int, int]]:
    """Split [lo, hi) at every index whose flag is set."""
    cuts = [i for i in range(lo + 1, hi) if flags[i]]
    bounds = [lo, *cuts, hi]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def segment_document(
    tokenizer,
    doc_id: str,
    text: str,
    max_length: int = 128,
    info: TokenizerInfo | None = None,
) -> Iterator[Segment | Skip]:
    """Yield the document's segments in order, and a `Skip` for anything left out."""
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 (<s>, one token, </s>), got {max_length}")
    if not text or text.isspace():
        yield Skip(doc_id, "empty_text")
        return
    info = info or TokenizerInfo.from_tokenizer(tokenizer)
    ids, offsets = tokenize_text(tokenizer, text)
    wst = word_starts(text, offsets)
    sst = sentence_starts(text, offsets, wst)
    budget = max_length - 2
    pieces: list[tuple[int, int]] = []  # token ranges, each within budget
    for a, b in _runs(sst, 0, len(ids)):
        if b - a <= budget:
            pieces.append((a, b))
            continue
        for wa, wb in _runs(wst, a, b):  # sentence too long: its words
            if wb - wa > budget:
                yield Skip(
                    f"{doc_id}@{offsets[wa][0]}",
                    "word_too_long",
                    f"a word of {wb - wa} tokens at character {offsets[wa][0]}",
                )
                pieces.append((-1, -1))  # a hard break: nothing packs across it
            else:
                pieces.append((wa, wb))

    n = 0
    cur: tuple[int, int] | None = None
    for piece in [*pieces, None]:
        if cur is not None and (piece is None or piece[0] < 0 or piece[1] - cur[0] > budget):
            seg = _make(tokenizer, info, doc_id, n, text, ids, offsets, *cur)
            if seg is not None:
                yield seg
                n += 1
            cur = None
        if piece is not None and piece[0] >= 0:
            cur = piece if cur is None else (cur[0], piece[1])


def _make(tokenizer, info, doc_id, n, text, ids, offsets, a, b) -> Segment | None:
    def blank(i: int) -> bool:
        s, e = offsets[i]
        return s == e or text[s:e].isspace()

    while a < b and blank(a):
        a += 1
    while b > a and blank(b - 1):
        b -= 1
    if a == b:
        return None
    start, end = offsets[a][0], max(e for _, e in offsets[a:b])
    seg_text = text[start:end]
    seg_offsets = [(s - start, e - start) for s, e in offsets[a:b]]
    return build_segment(f"{doc_id}-{n}", doc_id, seg_text, ids[a:b], seg_offsets, info)

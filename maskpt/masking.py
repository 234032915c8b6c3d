"""Documents -> segments -> masked segments, in one process, with counts.

This is the single-process path (`maskpt mask`, tests and the
benchmark); the Ray pipeline runs the same steps in parallel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from maskpt.records import MaskedSegment, Segment, Skip
from maskpt.tokenizer import TokenizerInfo
from preprocess.readers import Document
from preprocess.segment import segment_document


@dataclass
class Counts:
    """What went in and what came out. Every record read is either a written
    document or a skipped one: documents_read == documents_written +
    sum(skipped_documents.values())."""

    documents_read: int = 0
    documents_written: int = 0
    segments: int = 0
    segments_written: int = 0
    tokens_written: int = 0
    masked_tokens: int = 0
    content_tokens: int = 0
    skipped_documents: Counter = field(default_factory=Counter)
    """Reason -> documents (or unreadable input records) not written."""
    skipped_segments: Counter = field(default_factory=Counter)
    """Reason -> segments not written (their documents may still be written)."""
    examples: list[Skip] = field(default_factory=list)
    """The first few skips, with details, for messages."""

    def skip_document(self, s: Skip) -> None:
        self.skipped_documents[s.reason] += 1
        self._keep(s)

    def skip_segment(self, s: Skip) -> None:
        self.skipped_segments[s.reason] += 1
        self._keep(s)

    def _keep(self, s: Skip) -> None:
        if len(self.examples) < 20:
            self.examples.append(s)

    def as_dict(self) -> dict:
        return {
            "documents_read": self.documents_read,
            "documents_written": self.documents_written,
            "segments": self.segments,
            "segments_written": self.segments_written,
            "tokens_written": self.tokens_written,
            "masked_tokens": self.masked_tokens,
            "content_tokens": self.content_tokens,
            "mask_ratio": self.masked_tokens / max(1, self.content_tokens),
            "skipped_documents": dict(sorted(self.skipped_documents.items())),
            "skipped_segments": dict(sorted(self.skipped_segments.items())),
        }


ADDITIVE = (
    "documents_read", "documents_written", "segments", "segments_written",
    "tokens_written", "masked_tokens", "content_tokens",
)  # fmt: skip


def merge_counts(dicts) -> dict:
    """Sum `Counts.as_dict()` results (e.g. of all work units)."""
    total = Counts()
    for d in dicts:
        for key in ADDITIVE:
            setattr(total, key, getattr(total, key) + d.get(key, 0))
        total.skipped_documents.update(d.get("skipped_documents", {}))
        total.skipped_segments.update(d.get("skipped_segments", {}))
    return total.as_dict()


def iter_segments(
    items: Iterable[Document | Skip],
    tokenizer,
    counts: Counts,
    max_length: int = 128,
) -> Iterator[Segment]:
    info = TokenizerInfo.from_tokenizer(tokenizer)
    for item in items:
        counts.documents_read += 1
        if isinstance(item, Skip):  # a record the reader could not use
            counts.skip_document(item)
            continue
        produced = doc_skipped = False
        for seg in segment_document(tokenizer, item.id, item.text, max_length, info):
            if isinstance(seg, Skip):
                if seg.id == item.id:  # the whole document (e.g. empty_text)
                    counts.skip_document(seg)
                    doc_skipped = True
                else:
                    counts.skip_segment(seg)
                continue
            counts.segments += 1
            produced = True
            yield seg
        if not produced and not doc_skipped:
            counts.skip_document(Skip(item.id, "no_segments"))


def mask_documents(
    items: Iterable[Document | Skip],
    tokenizer,
    policy,
    seed: int,
    counts: Counts,
    max_length: int = 128,
    batch_size: int | None = None,
) -> Iterator[MaskedSegment]:
    """Segment and mask documents in batches; skips go to `counts`.

    Results come back in document order, so a document whose segments were all
    dropped by the policy is noticed when the next document starts."""
    batch_size = batch_size or getattr(policy.config, "batch_size", 64)
    batch: list[Segment] = []
    doc = {"id": None, "written": False}

    def close_doc():
        if doc["id"] is not None:
            if doc["written"]:
                counts.documents_written += 1
            else:
                counts.skip_document(Skip(doc["id"], "all_segments_skipped"))

    def flush():
        results = policy.mask_batch(batch, seed)
        for seg, res in zip(batch, results, strict=True):
            if seg.doc_id != doc["id"]:
                close_doc()
                doc.update(id=seg.doc_id, written=False)
            if isinstance(res, Skip):
                counts.skip_segment(res)
                continue
            counts.segments_written += 1
            counts.tokens_written += len(res.input_ids)
            counts.masked_tokens += res.num_masked
            counts.content_tokens += res.segment.num_content_tokens
            doc["written"] = True
            yield res
        batch.clear()

    for seg in iter_segments(items, tokenizer, counts, max_length):
        batch.append(seg)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()
    close_doc()

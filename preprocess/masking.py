"""Documents -> segments -> masked segments, in one process, with counts.

This is the single-process path (`maskpt mask`, tests and the
benchmark); the Ray pipeline runs the same steps in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from maskpt.core.records import Document, MaskedSegment, Segment, Skip
from maskpt.core.tokenizer import TokenizerInfo
from policies.base import Annotation
from preprocess.counts import Counts
from preprocess.segment import segment_document


def iter_segments(
    items: Iterable[Document | Skip],
    tokenizer,
    counts: Counts,
    max_length: int = 128,
) -> Iterator[Segment]:
    """Each document's segments; unusable records, repeated document ids
    (`duplicate_id`: the first is kept) and documents without any segment are
    counted as skipped."""
    info = TokenizerInfo.from_tokenizer(tokenizer)
    seen: set[str] = set()
    for item in items:
        counts.documents_read += 1
        if isinstance(item, Skip):  # a record the reader could not use
            counts.skip_document(item)
            continue
        if item.id in seen:
            counts.skip_document(Skip(item.id, "duplicate_id", f"document id {item.id!r} again"))
            continue
        seen.add(item.id)
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
    epoch: int = 0,
) -> Iterator[tuple[MaskedSegment, Annotation]]:
    """Segment, annotate and draw (epoch `epoch`) documents in batches:
    (masked segment, its annotation) pairs; skips go to `counts`.

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
        for seg, ann in zip(batch, policy.annotate(batch), strict=True):
            if seg.doc_id != doc["id"]:
                close_doc()
                doc.update(id=seg.doc_id, written=False)
            if isinstance(ann, Skip):
                counts.skip_segment(ann)
                continue
            res = policy.draw(seg, ann, seed, epoch)
            counts.segments_written += 1
            counts.tokens_written += len(res.input_ids)
            counts.masked_tokens += res.num_masked
            counts.content_tokens += res.segment.num_content_tokens
            doc["written"] = True
            yield res, ann
        batch.clear()

    for seg in iter_segments(items, tokenizer, counts, max_length):
        batch.append(seg)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()
    close_doc()

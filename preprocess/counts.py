"""`Counts`: what went into preprocessing and what came out, per unit of work
and for a whole shard folder (`index.json`'s `counts`).

Every record read is either a written document or a skipped one:
`documents_read == documents_written + sum(skipped_documents.values())`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from maskpt.core.records import Skip

ADDITIVE = (
    "documents_read",
    "documents_written",
    "segments",
    "segments_written",
    "tokens_written",
    "masked_tokens",
    "content_tokens",
)


@dataclass
class Counts:
    """Counts of one unit or one folder; `as_dict()` is their JSON form."""

    documents_read: int = 0
    """Input records read (documents, dump pages, unreadable lines)."""
    documents_written: int = 0
    """Documents with at least one segment written."""
    segments: int = 0
    """Segments cut from the documents."""
    segments_written: int = 0
    """Segments the policy masked and the shards hold (rows)."""
    tokens_written: int = 0
    """Input tokens of the rows, <s> and </s> included."""
    masked_tokens: int = 0
    """Input tokens the policy masked."""
    content_tokens: int = 0
    """Input tokens of the rows without <s> and </s>."""
    skipped_documents: Counter = field(default_factory=Counter)
    """Reason -> documents (or unreadable input records) not written."""
    skipped_segments: Counter = field(default_factory=Counter)
    """Reason -> segments not written (their documents may still be written)."""
    examples: list[Skip] = field(default_factory=list, compare=False)
    """The first few skips, with details, for messages (not stored)."""

    @property
    def mask_ratio(self) -> float:
        return self.masked_tokens / max(1, self.content_tokens)

    def skip_document(self, s: Skip) -> None:
        self.skipped_documents[s.reason] += 1
        self._keep(s)

    def skip_segment(self, s: Skip) -> None:
        self.skipped_segments[s.reason] += 1
        self._keep(s)

    def _keep(self, s: Skip) -> None:
        if len(self.examples) < 20:
            self.examples.append(s)

    def add(self, other: Counts) -> None:
        for key in ADDITIVE:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.skipped_documents.update(other.skipped_documents)
        self.skipped_segments.update(other.skipped_segments)

    def as_dict(self) -> dict:
        return {
            **{key: getattr(self, key) for key in ADDITIVE},
            "mask_ratio": self.mask_ratio,
            "skipped_documents": dict(sorted(self.skipped_documents.items())),
            "skipped_segments": dict(sorted(self.skipped_segments.items())),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Counts:
        """The counts of `as_dict()` output (`mask_ratio` is derived, not read)."""
        out = cls(**{key: int(d[key]) for key in ADDITIVE})
        out.skipped_documents.update({str(k): int(v) for k, v in d["skipped_documents"].items()})
        out.skipped_segments.update({str(k): int(v) for k, v in d["skipped_segments"].items()})
        return out


def merge_counts(parts) -> Counts:
    """The sum of several `Counts` (e.g. of all units)."""
    total = Counts()
    for c in parts:
        total.add(c)
    return total

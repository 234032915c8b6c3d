import pytest

import policies
from maskpt.core.records import MaskedSegment, Skip
from policies.base import fill_spans
from policies.ssm import SALIENT_LABELS, find_entities
from tests.helpers import bundled_texts, make_segments, mask_with_entities, synthetic_texts


@pytest.fixture(scope="module")
def segments(tokenizer):
    # bundled paragraphs cut short (entities) plus lower-case pseudo text (mostly none)
    texts = bundled_texts() + [t.lower() for t in synthetic_texts(150, seed=5)]
    return make_segments(tokenizer, texts, max_length=48)


@pytest.fixture(scope="module")
def entities(segments):
    return find_entities([s.text for s in segments])


def test_masks_exactly_one_whole_entity(tok_info, segments, entities):
    pol = policies.create("ssm_v1", tok_info)
    results = mask_with_entities(pol, segments, 0, entities)
    n_masked = 0
    for seg, ents, ex in zip(segments, entities, results):
        salient = [
            (s, e)
            for s, e, label in ents
            if label in SALIENT_LABELS
            and (label != "DATE" or any(c.isdigit() for c in seg.text[s:e]))
        ]
        if isinstance(ex, Skip):
            assert ex.reason == "no_entity" and not salient
            continue
        n_masked += 1
        assert ex.source_ids.count(tok_info.mask_id) == 1
        idx = [i for i, m in enumerate(ex.mask) if m]
        assert idx == list(range(idx[0], idx[-1] + 1)), "one contiguous span"
        start = seg.offsets[idx[0]][0]
        end = seg.offsets[idx[-1]][1]
        # the masked tokens are exactly those overlapping one salient entity
        match = [(s, e) for s, e in salient if s >= start and e <= end]
        assert match, f"{seg.id}: masked {seg.text[start:end]!r} is no entity"
        s, e = match[0]
        assert seg.text[start:end].strip() == seg.text[s:e].strip()
        assert fill_spans(ex.source_ids, ex.target_ids, tok_info) == list(seg.input_ids)
    assert n_masked > 30
    assert sum(isinstance(r, Skip) for r in results) > 30


def test_dropped_segments_are_counted(tokenizer, tok_info):
    from maskpt.core.records import Document
    from preprocess.masking import Counts, mask_documents

    docs = [
        Document("a", "Marie Curie moved to Paris in 1891."),
        Document("b", "the cat sat on the mat."),
    ]
    counts = Counts()
    pol = policies.create("ssm_v1", tok_info)
    out = [ex for ex, _ in mask_documents(docs, tokenizer, pol, 0, counts)]
    assert [ex.doc_id for ex in out] == ["a"]
    assert counts.skipped_segments["no_entity"] == 1
    assert counts.skipped_documents["all_segments_skipped"] == 1
    assert counts.documents_read == 2 and counts.documents_written == 1


def test_rand_fallback(tokenizer, tok_info):
    seg = make_segments(tokenizer, ["the cat sat on the mat and looked out of the window."])[0]
    pol = policies.create("ssm_v1", tok_info, {"on_no_entity": "rand"})
    ex = pol.mask(seg, 0)
    assert isinstance(ex, MaskedSegment) and ex.num_masked >= 1 and ex.format == "span"


def test_precomputed_entities_equal_own_ner(tok_info, segments, entities):
    pol = policies.create("ssm_v1", tok_info)
    assert pol.mask_batch(segments[:40], 4) == mask_with_entities(
        pol, segments[:40], 4, entities[:40]
    )


def test_ner_only_pipeline_matches_full_pipeline(segments):
    import spacy

    from policies.ssm import SPACY_MODEL_FALLBACK, load_ner

    nlp = load_ner()
    assert nlp.pipe_names == ["ner"]
    try:
        full = spacy.load("en_core_web_sm")
    except OSError:
        full = spacy.load(SPACY_MODEL_FALLBACK)
    texts = [s.text for s in segments[:60]]
    a = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    b = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in full.pipe(texts)]
    assert a == b


def test_bad_config_is_clear(tok_info):
    from maskpt.core.config import ConfigError

    with pytest.raises(ConfigError, match="on_no_entity"):
        policies.create("ssm_v1", tok_info, {"on_no_entity": "skip"})


def test_an_entity_is_one_span_whatever_tokens_it_holds(tokenizer, tok_info):
    text = "They flew to New   York  City in May."
    (seg,) = make_segments(tokenizer, [text])
    start, end = text.index("New"), text.index("City") + 4
    ws = [i for i, (s, e) in enumerate(seg.offsets) if start < s < end and not text[s:e].strip()]
    assert ws, "the text must hold whitespace-only tokens inside the entity"
    pol = policies.create("ssm_v1", tok_info)
    (ex,) = mask_with_entities(pol, [seg], 0, [[(start, end, "GPE")]])
    assert ex.source_ids.count(tok_info.mask_id) == 1
    idx = [i for i, m in enumerate(ex.mask) if m]
    assert idx == list(range(idx[0], idx[-1] + 1)) and set(ws) <= set(idx)


def test_dates_need_a_digit_as_realm_unless_all_dates_asked(tokenizer, tok_info):
    text = "We met yesterday and again on 4 May 1891 in the summer."
    (seg,) = make_segments(tokenizer, [text])
    ents = [
        (text.index(w), text.index(w) + len(w), "DATE")
        for w in ("yesterday", "4 May 1891", "the summer")
    ]
    realm = policies.create("ssm_v1", tok_info).token_spans(seg, ents)
    every = policies.create("ssm_v1", tok_info, {"dates": "all"}).token_spans(seg, ents)

    def spelled(spans):
        return [text[seg.offsets[i][0] : seg.offsets[j - 1][1]].strip() for i, j in spans]

    assert spelled(realm) == ["4 May 1891"]
    assert spelled(every) == ["yesterday", "4 May 1891", "the summer"]


def test_the_official_spacy_model_is_preferred_to_its_pypi_copy(monkeypatch):
    import importlib.util

    from policies.ssm import SPACY_MODEL, SPACY_MODEL_FALLBACK, spacy_package

    installed = {SPACY_MODEL_FALLBACK}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name in installed else None
    )
    assert spacy_package() == SPACY_MODEL_FALLBACK
    installed.add(SPACY_MODEL)
    assert spacy_package() == SPACY_MODEL
    assert spacy_package("xx_other_model") is None  # no copy is assumed for other models

import pytest

from maskpt.core.records import Segment, Skip
from preprocess.segment import segment_document
from tests.helpers import bundled_texts, synthetic_texts


def _segs(items):
    return [s for s in items if isinstance(s, Segment)]


@pytest.mark.parametrize("max_length", [16, 32, 128])
def test_segments_fit_and_cover_the_document(tokenizer, max_length):
    for i, text in enumerate(bundled_texts() + synthetic_texts(20, seed=3)):
        out = list(segment_document(tokenizer, f"doc{i}", text, max_length))
        segs = _segs(out)
        assert all(len(s.input_ids) <= max_length for s in segs)
        assert [s.id for s in segs] == [f"doc{i}-{n}" for n in range(len(segs))]
        # every non-space character of the document is in exactly one segment, in order
        assert "".join(s.text.replace(" ", "") for s in segs) == "".join(text.split())
        assert not [s for s in out if isinstance(s, Skip)]


def test_cuts_on_sentence_boundaries_when_possible(tokenizer):
    text = " ".join(f"Sentence number {i} is here and it ends." for i in range(30))
    segs = _segs(segment_document(tokenizer, "d", text, 64))
    assert len(segs) > 2
    for s in segs:
        assert s.text.startswith("Sentence") and s.text.endswith("ends.")


def test_long_sentence_cut_between_words(tokenizer):
    text = " ".join(["longword"] * 200) + "."
    segs = _segs(segment_document(tokenizer, "d", text, 32))
    assert len(segs) > 3
    for s in segs:
        assert set(s.text.rstrip(".").split()) == {"longword"}


def test_word_longer_than_budget_is_skipped_and_counted(tokenizer):
    text = "Before it. " + "x" * 400 + " after it."
    out = list(segment_document(tokenizer, "d", text, 32))
    skips = [s for s in out if isinstance(s, Skip)]
    assert [s.reason for s in skips] == ["word_too_long"]
    texts = [s.text for s in _segs(out)]
    assert texts == ["Before it.", "after it."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_empty_text_is_a_counted_skip(tokenizer, text):
    assert list(segment_document(tokenizer, "d", text)) == [Skip("d", "empty_text")]


def test_stable_ids(tokenizer):
    text = bundled_texts()[0]
    a = list(segment_document(tokenizer, "d", text, 32))
    b = list(segment_document(tokenizer, "d", text, 32))
    assert a == b

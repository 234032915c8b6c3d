import pytest

from maskpt.core.records import MaskedSegment, Segment


def test_segment_lengths_must_agree():
    with pytest.raises(ValueError, match="differ in length"):
        Segment("a-0", "a", "x", (0, 5, 2), (-1, 0), ((0, 0), (0, 1), (0, 0)))


def test_masked_segment_checks_format_and_mask():
    seg = Segment("a-0", "a", "x", (0, 5, 2), (-1, 0, -1), ((0, 0), (0, 1), (0, 0)))
    with pytest.raises(ValueError, match="format"):
        MaskedSegment(seg, (0, 4, 2), (0, 5, 2), (False, True, False), "weird")
    with pytest.raises(ValueError, match="mask has 2 entries"):
        MaskedSegment(seg, (0, 4, 2), (0, 5, 2), (False, True), "full")
    ex = MaskedSegment(seg, (0, 4, 2), (0, 5, 2), (False, True, False), "full")
    assert ex.num_masked == 1 and ex.mask_ratio == 1.0 and ex.id == "a-0"

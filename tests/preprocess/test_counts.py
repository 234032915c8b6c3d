"""Counts add up over units and survive their JSON form."""

from maskpt.core.records import Skip
from preprocess.counts import Counts, merge_counts


def test_merge_and_json_round_trip():
    a, b = (
        Counts(documents_read=3, documents_written=2, masked_tokens=3, content_tokens=10),
        Counts(),
    )
    a.skip_document(Skip("x", "empty_text"))
    b.documents_read, b.masked_tokens, b.content_tokens = 1, 1, 10
    b.skip_document(Skip("y", "empty_text"))
    b.skip_segment(Skip("y-0", "no_entity"))
    total = merge_counts([a, b])
    assert total.documents_read == 4 and total.skipped_documents == {"empty_text": 2}
    assert total.skipped_segments == {"no_entity": 1} and total.mask_ratio == 0.2
    d = total.as_dict()
    assert d["mask_ratio"] == 0.2 and Counts.from_dict(d) == total

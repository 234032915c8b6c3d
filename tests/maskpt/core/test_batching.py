"""Padding token-id lists."""

from maskpt.core.batching import pad, pad_ids, pad_seq2seq


def test_padding():
    assert pad([[1, 2], [3]], 0).tolist() == [[1, 2], [3, 0]]
    ids, att = pad_ids([[5], [6, 7]], 1)
    assert ids.tolist() == [[5, 1], [6, 7]] and att.tolist() == [[1, 0], [1, 1]]
    b = pad_seq2seq(
        [[5, 6]],
        [
            [7],
        ],
        1,
    )
    assert b["labels"].tolist() == [[7]] and b["attention_mask"].tolist() == [[1, 1]]
    b = pad_seq2seq([[5], [6]], [[7], [8, 9]], 1)
    assert b["labels"].tolist() == [[7, -100], [8, 9]]

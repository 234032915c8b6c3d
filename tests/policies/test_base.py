"""policies/base.py: an annotation's word ids from its word starts."""

import random

from policies.base import Annotation


def test_word_ids_count_the_word_starts_before_each_token():
    # <s> the ca t sat </s> ("cat" in two tokens): 0 1 1 2 between the specials' -1
    starts = (False, True, True, False, True, False)
    assert Annotation(starts, ()).word_ids == (-1, 0, 1, 1, 2, -1)
    # tokens before the first word start belong to word 0; the specials' flags are ignored
    assert Annotation((True, False, False, True, True), ()).word_ids == (-1, 0, 0, 0, -1)
    assert Annotation((), ()).word_ids == ()
    assert Annotation((True,), ()).word_ids == (-1,)
    assert Annotation((True, True), ()).word_ids == (-1, -1)
    rng = random.Random(0)
    for _ in range(500):
        starts = tuple(rng.random() < 0.4 for _ in range(rng.randint(3, 60)))
        ids = Annotation(starts, ()).word_ids
        assert len(ids) == len(starts) and ids[0] == ids[-1] == -1
        for i in range(1, len(starts) - 1):  # a token's id: the starts up to it, less one
            assert ids[i] == max(sum(starts[1 : i + 1]) - 1, 0)

"""Micro-batches made in the loader: NumPy collation and length bucketing
inside each global batch (same examples per step, less padding, the same
plan on every rank, worker and resume)."""

import pytest
import torch

from tests.helpers import make_shards
from train.batches import bucket_plan, collate_micro, padding_share
from train.data import PretrainStream, open_source


@pytest.fixture(scope="module")
def source(tmp_path_factory, tokenizer):
    return open_source(str(make_shards(tmp_path_factory.mktemp("shards") / "arrow", tokenizer)))


def _stream(source, rank=0, world=2, accum=3, bucket=True, **kw):
    return PretrainStream(
        [source], 4, rank, world, seed=5, accum=accum, bucket=bucket, pad_id=1, **kw
    )


def test_collate_pads_and_counts():
    rows = [
        {"id": "a", "input_ids": [5, 6, 7], "labels": [5, 6, 7, 8], "masked": [0, 1, 0]},
        {"id": "b", "input_ids": [9], "labels": [9, 2], "masked": [1]},
    ]
    b = collate_micro(rows, pad_id=1, pad_to_multiple_of=8, norm_tokens=40)
    assert b["input_ids"].tolist() == [[5, 6, 7] + [1] * 5, [9] + [1] * 7]
    assert b["attention_mask"].sum(1).tolist() == [3, 1]
    assert b["labels"][1].tolist() == [9, 2] + [-100] * 6
    assert (b["tokens"], b["label_tokens"], b["masked"], b["original"]) == (10, 6, 2, 4)
    assert b["ids"] == ["a", "b"] and b["norm_tokens"] == 40
    assert b["input_ids"].dtype == torch.long


def test_labels_pad_to_their_own_multiple(source):
    rows = [{"id": "a", "input_ids": [5] * 20, "labels": [5] * 3, "masked": [1] * 20}]
    b = collate_micro(rows, pad_id=1, pad_to_multiple_of=128, labels_multiple=16)
    assert b["input_ids"].shape == (1, 128) and b["labels"].shape == (1, 16)
    # through the stream: inputs to 32, labels to 8, as the config's two fields say
    stream = _stream(source, pad_to_multiple_of=32, pad_labels_to_multiple_of=8)
    shapes = {(b["input_ids"].shape[1], b["labels"].shape[1]) for b in _first(stream, 6)}
    assert all(i % 32 == 0 and n % 8 == 0 for i, n in shapes)
    assert any(i != n for i, n in shapes)  # padded apart: some micro-batch's lengths differ


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("data.pad_labels_to_multiple_of", -1, "must be >= 0, got -1"),
        ("data.pad_to_multiple_of", 0, "must be >= 1, got 0"),
    ],
)
def test_padding_fields_refuse_bad_values_by_name(field, value, message):
    from pathlib import Path

    from maskpt.core.config import ConfigError, load_config
    from train.pretrain_config import PretrainConfig

    paper = Path(__file__).resolve().parents[2] / "configs/pretrain/bart_base_paper.yaml"
    with pytest.raises(ConfigError, match=f"{field}.*{message}"):
        load_config(PretrainConfig, paper, [f"{field}={value}"])


def _first(stream, n):
    it = iter(stream)
    return [next(it) for _ in range(n)]


def test_bucket_plan_is_a_stable_sort():
    assert bucket_plan([(3, 1), (1, 5), (3, 1), (2, 0)]) == [1, 3, 0, 2]


def test_a_global_batch_holds_the_same_examples_bucketed_or_not(source):
    """Every rank and micro-step together: the same ids per optimizer step with
    and without bucketing, each once; bucketed micro-batches ordered by length."""
    accum, world = 3, 2
    for g in range(3):
        got = {}
        for bucket in (False, True):
            ids, longest = [], []
            for k in range(accum):
                for rank in range(world):
                    rows = _stream(source, rank, world, accum, bucket).micro_batch(g * accum + k)
                    ids += [r["id"] for r in rows]
                    longest.append(max(len(r["input_ids"]) for r in rows))
            assert len(ids) == len(set(ids)) == 4 * world * accum
            got[bucket] = (sorted(ids), longest)
        assert got[True][0] == got[False][0]
        assert got[True][1] == sorted(got[True][1])  # slot order = length order


def test_bucketing_pads_less_and_carries_the_global_token_count(source):
    def batches(bucket):
        s = _stream(source, world=1, accum=4, bucket=bucket)
        it = iter(s)
        return [next(it) for _ in range(40)]

    plain, bucketed = batches(False), batches(True)
    assert padding_share(bucketed) < 0.6 * padding_share(plain)
    for g in range(10):  # each global batch: its label tokens, the same on each micro-batch
        group = bucketed[4 * g : 4 * g + 4]
        assert {b["norm_tokens"] for b in group} == {sum(b["label_tokens"] for b in group)}


def test_bucketed_stream_resumes_and_splits_over_workers_exactly(source):
    """A stream restarted at micro-step 7, and one read by 2 DataLoader workers,
    give what one uninterrupted reader gives."""
    ref = _stream(source, world=1, accum=4)
    it = iter(ref)
    want = [next(it)["ids"] for _ in range(16)]
    resumed = _stream(source, world=1, accum=4)
    resumed.load_state_dict({"micro_steps_done": 7})
    it = iter(resumed)
    assert [next(it)["ids"] for _ in range(9)] == want[7:]
    from train.batches import keep_as_is

    loader = torch.utils.data.DataLoader(
        _stream(source, world=1, accum=4), batch_size=None, collate_fn=keep_as_is, num_workers=2
    )
    it = iter(loader)
    assert [next(it)["ids"] for _ in range(16)] == want

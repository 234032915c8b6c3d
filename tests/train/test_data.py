"""The pre-training stream: exactly once per epoch across ranks and dataloader
workers, deterministic shuffling, exact resume, mixing by weight, the same
rows from Arrow, WebDataset and fsspec URLs, shared checksum verification."""

import shutil

import pytest
import torch

from tests.helpers import make_shards
from train.data import DataError, PretrainStream, open_source


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    return make_shards(tmp_path_factory.mktemp("shards") / "arrow", tokenizer)


def all_ids(shards):
    from preprocess.inspection import iter_rows

    return sorted(r["id"] for _, _, r in iter_rows(shards))


def test_webdataset_and_fsspec_url_give_the_same_stream(shards, tmp_path_factory, tokenizer):
    wds = make_shards(tmp_path_factory.mktemp("wds") / "wds", tokenizer, fmt="webdataset")
    assert not list(wds.glob("*.arrow"))
    streams = [
        PretrainStream([open_source(f)], 4, 0, 1, seed=2)
        for f in (str(shards), str(wds), f"file://{shards}")
    ]
    batches = [[s.micro_batch(k) for k in range(12)] for s in streams]
    assert batches[0] == batches[1] == batches[2]


def test_stream_exactly_once_across_ranks_and_workers(shards):
    src = open_source(str(shards))
    n, k_steps = src.size, src.size // 6 + 2
    per_rank = []
    for rank in range(2):
        stream = PretrainStream([src], micro_batch=3, rank=rank, world_size=2, seed=5)
        direct = [[r["id"] for r in stream.micro_batch(k)] for k in range(k_steps)]
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        it = iter(loader)
        assert [[r["id"] for r in next(it)] for _ in range(k_steps)] == direct
        per_rank.append(direct)
    stream_order = [i for k in range(k_steps) for rank in range(2) for i in per_rank[rank][k]]
    epoch = stream_order[:n]
    assert sorted(epoch) == all_ids(shards)  # every example exactly once
    assert epoch != sorted(epoch)  # shuffled


def test_stream_resume_and_epochs(shards):
    src = open_source(str(shards))
    a = PretrainStream([src], 4, 0, 1, seed=1)
    first = [a.micro_batch(k) for k in range(30)]
    b = PretrainStream([src], 4, 0, 1, seed=1)
    b.load_state_dict({"micro_steps_done": 17})
    assert next(iter(b)) == first[17]
    n = src.size
    epoch0 = [r["id"] for mb in first for r in mb][:n]
    epoch1 = [r["id"] for mb in first for r in mb][n : 2 * n]
    assert sorted(epoch0) == all_ids(shards)
    if len(epoch1) == n:
        assert sorted(epoch1) == sorted(epoch0) and epoch1 != epoch0


def test_mixture_weights(shards, tmp_path):
    src_a, src_b = open_source(str(shards), 3.0), open_source(str(shards), 1.0)
    s = PretrainStream([src_a, src_b], 8, 0, 1, seed=0)
    picks = [s.mix.pick(p) for p in range(4000)]
    assert abs(picks.count(0) / 4000 - 0.75) < 0.01


def test_ranks_share_checksum_verification(tmp_path, shards):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(shards, corrupt)
    listed = [s.path for s in open_source(str(shards)).shards]
    k = 1
    p = corrupt / listed[k]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupted"):  # the rank that owns shard k finds it
        open_source(str(corrupt), verify_part=(k % 2, 2))
    open_source(str(corrupt), verify_part=((k + 1) % 2, 2))  # the other rank does not hash it
    (corrupt / listed[0]).unlink()
    for part in range(2):  # a missing shard is seen by every rank
        with pytest.raises(DataError, match="missing"):
            open_source(str(corrupt), verify_part=(part, 2))


def test_rows_straight_into_bart_give_the_trainers_loss(shards, tokenizer, tiny_bart):
    """A Hugging Face user's path: rows from `Dataset.from_file`, padded by
    `DataCollatorForSeq2Seq`, fed to BART: the same loss as the recipe's batch."""
    from datasets import Dataset
    from transformers import BartForConditionalGeneration, DataCollatorForSeq2Seq

    from preprocess.index import load_index
    from train.batches import TENSORS, collate_micro

    shard = load_index(shards).shards_of("arrow")[0]
    rows = Dataset.from_file(str(shards / shard.path)).select(range(6))
    model = BartForConditionalGeneration.from_pretrained(tiny_bart).eval()
    hf = DataCollatorForSeq2Seq(tokenizer, model=model)(
        [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    )
    batch = collate_micro(list(rows), tokenizer.pad_token_id)
    ours = {k: batch[k] for k in TENSORS}
    with torch.no_grad():
        assert model(**hf).loss.item() == pytest.approx(model(**ours).loss.item(), rel=1e-6)
    # the model input is the masked sequence, not the original
    assert any(r["input_ids"] != r["original_ids"] for r in rows)


def test_the_trainer_trusts_shards_not_the_index_counts(shards, tmp_path):
    """A lowered row count in index.json is refused by its checksum; with the
    checksum forged too, by the shard's own row count when it is read."""
    import json

    from preprocess.index import ShardIndexError, checksum

    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    index = json.loads((copy / "index.json").read_text())
    index["shards"][0]["examples"] -= 5
    (copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardIndexError, match="checksum does not match"):
        open_source(str(copy))
    index["checksum"] = checksum(index)
    (copy / "index.json").write_text(json.dumps(index))
    stream = PretrainStream([open_source(str(copy))], 4, 0, 1, seed=0, shuffle=False)
    with pytest.raises(DataError, match="rows, index.json says"):
        stream.micro_batch(0)


def test_a_shard_rewritten_during_the_run_is_refused_when_next_opened(shards, tmp_path):
    """Valid Arrow with other content put in place of a shard after the run
    started: the next epoch's open of that shard stops with it named (before
    this check, later epochs trained on it silently)."""
    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    src = open_source(str(copy))
    stream = PretrainStream([src], 4, 0, 1, seed=0)
    epoch = -(-src.size // 4)
    for k in range(epoch):  # the first epoch: every shard opened and checked once
        stream.micro_batch(k)
    first, second = sorted(copy.glob("arrow/*.arrow"))[:2]
    first.write_bytes(second.read_bytes())
    with pytest.raises(DataError, match=rf"{first.name}: size or sha256 differs"):
        for k in range(epoch, 3 * epoch):
            stream.micro_batch(k)


def test_a_shard_changed_at_its_size_with_its_mtime_put_back_is_still_refused(shards, tmp_path):
    """After its first open a shard is re-hashed only when its file status
    changed; a write changes ctime, which `touch -r` / os.utime cannot set back."""
    import os

    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    src = open_source(str(copy))
    stream = PretrainStream([src], 4, 0, 1, seed=0)
    epoch = -(-src.size // 4)
    for k in range(epoch):
        stream.micro_batch(k)
    shard = sorted(copy.glob("arrow/*.arrow"))[0]
    before = shard.stat()
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(DataError, match=rf"{shard.name}: size or sha256 differs"):
        for k in range(epoch, 3 * epoch):
            stream.micro_batch(k)


def test_a_shard_error_in_a_loader_worker_reaches_the_trainer_as_one_line(shards, tmp_path):
    """A DataLoader worker's exception arrives wrapped in its traceback text; the
    stream hands the error over as data instead, for a one-line stop."""
    from train.batches import keep_as_is

    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    src = open_source(str(copy))
    for shard in copy.glob("arrow/*.arrow"):
        shard.write_bytes(shard.read_bytes()[:-7])  # every shard now differs
    stream = PretrainStream([src], 4, 0, 1, seed=0, pad_id=1)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, collate_fn=keep_as_is, num_workers=1
    )
    first = next(iter(loader))
    assert "\n" not in first["data_error"] and "size or sha256 differs" in first["data_error"]

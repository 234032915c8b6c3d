"""Checkpoint completion records: intact or not, pruning, data differences."""

import pytest

from maskpt.core.errors import UserError
from train import checkpoints as ck


def _save(root, tag, files):
    folder = root / tag
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    ck.mark_complete(root, tag, 0, int(tag[4:]), {"seed": 0})


def test_intact_needs_the_completion_record_and_every_size(tmp_path):
    _save(tmp_path, "step00000002", {"model.pt": b"x" * 10, "optim.pt": b"y" * 20})
    assert ck.intact(tmp_path, "step00000002", 0) == ""
    (tmp_path / "step00000002" / "optim.pt").write_bytes(b"y" * 7)  # cut short
    assert "optim.pt has 7 bytes, 20 when saved" in ck.intact(tmp_path, "step00000002", 0)
    (tmp_path / "step00000004").mkdir()  # a save that never finished
    (tmp_path / "step00000004" / "model.pt").write_bytes(b"z")
    assert ck.intact(tmp_path, "step00000004", 0) == "its save did not finish"
    assert ck.intact(tmp_path, "step00000002", 1) == "its save did not finish"  # rank 1's
    assert ck.tags(tmp_path) == ["step00000004", "step00000002"]


def test_prune_keeps_the_newest_intact(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, f"step{step:08d}", {"m.pt": b"m"})
    (tmp_path / "step00000005").mkdir()  # torn and newest: left alone
    ck.prune(tmp_path, 2, 0)
    assert ck.tags(tmp_path) == ["step00000005", "step00000004", "step00000003"]
    ck.prune(tmp_path, 0, 0)  # 0 keeps everything
    assert len(ck.tags(tmp_path)) == 3


def test_other_data_is_refused_by_name_unless_allowed():
    saved = {"shards": ["a"], "micro_batch": 4, "world_size": 2}
    now = {"shards": ["b"], "micro_batch": 4, "world_size": 2}
    with pytest.raises(UserError, match=r'shards: checkpoint \["a"\], this run \["b"\]'):
        ck.check_data(saved, now, "checkpoint step2", allow=False)
    ck.check_data(saved, now, "checkpoint step2", allow=True)
    ck.check_data(saved, dict(saved), "checkpoint step2", allow=False)
    with pytest.raises(UserError, match="micro_batch: checkpoint 4, this run 2"):
        ck.check_data(saved, {**saved, "micro_batch": 2}, "checkpoint step2", allow=False)


def test_content_check_finds_a_file_corrupted_at_its_size(tmp_path):
    folder = tmp_path / "step00000002"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.pt").write_bytes(bytes(range(20)))
    for rank in range(2):  # two ranks: each hashes its share
        ck.mark_complete(tmp_path, "step00000002", rank, 2, {"seed": 0}, world=2)
    (folder / "f1.pt").write_bytes(bytes(range(1, 21)))  # same size, other bytes
    assert ck.intact(tmp_path, "step00000002", 0) == ""  # sizes alone: looks fine
    assert ck.intact(tmp_path, "step00000002", 0, content=True) == ""  # f1 is rank 1's share
    assert "f1.pt differs" in ck.intact(tmp_path, "step00000002", 1, content=True)
    assert "f1.pt differs" in ck.intact_on_every_rank(tmp_path, "step00000002")


def test_ranks_list_the_same_files_while_another_writes_its_record(tmp_path):
    """Rank 0's completion record is being written (its temporary file exists)
    while rank 1 lists the folder: rank 1 neither records it nor fails on it
    vanishing, and the two ranks' shares still cover every file once."""
    import json

    folder = tmp_path / "step00000002"
    folder.mkdir()
    for i in range(4):
        (folder / f"f{i}.pt").write_bytes(bytes([i]) * 10)
    (folder / ".maskpt-complete.rank0.json.tmp-123").write_text("{")  # rank 0 mid-write
    ck.mark_complete(tmp_path, "step00000002", 1, 2, {"seed": 0}, world=2)
    (folder / ".maskpt-complete.rank0.json.tmp-123").unlink()
    ck.mark_complete(tmp_path, "step00000002", 0, 2, {"seed": 0}, world=2)
    marks = [json.loads((folder / f"maskpt-complete.rank{r}.json").read_text()) for r in (0, 1)]
    assert marks[0]["files"] == marks[1]["files"] == {f"f{i}.pt": 10 for i in range(4)}
    shares = [set(m["sha256"]) for m in marks]
    assert shares[0] | shares[1] == set(marks[0]["files"]) and not shares[0] & shares[1]

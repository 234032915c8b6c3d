"""Shard files: the round trip of rows through Arrow and WebDataset tar,
the same rows in both, no pickle, row checks, and a folder of an unknown
format version refused by name."""

import json
import tarfile

import pytest

from maskpt.core.errors import UserError
from preprocess.index import load_index
from preprocess.shards import FORMATS, ShardError, check_row, read_shard, write_shard
from tests.helpers import make_shards

ROWS = [
    {"id": f"d{i}-0", "doc_id": f"d{i}", "input_ids": [0, 5 + i, 6, 2],
     "source_ids": [0, 4, 6, 2], "target_ids": [0, 5 + i, 2], "mask": [False, True, False, False]}
    for i in range(5)
]  # fmt: skip


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_round_trip(tmp_path, fmt):
    entry = write_shard(tmp_path / "part-000-000000-000", fmt, ROWS, "000-000000")
    path = tmp_path / entry.path
    assert entry.examples == 5 and entry.tokens == 20 and entry.bytes == path.stat().st_size
    assert entry.unit == "000-000000" and entry.stem == "part-000-000000-000"
    assert list(read_shard(path)) == ROWS
    again = write_shard(tmp_path / "again", fmt, ROWS, "000-000000")
    assert (tmp_path / again.path).read_bytes() == path.read_bytes()  # same rows, same bytes


def test_tar_members_are_json_and_npy_only(tmp_path):
    entry = write_shard(tmp_path / "p", "webdataset", ROWS, "u")
    with tarfile.open(tmp_path / entry.path) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 for m in tar.getmembers())
    assert {n.split(".", 1)[1] for n in names} == {
        "json", "input_ids.npy", "source_ids.npy", "target_ids.npy", "mask.npy",
    }  # fmt: skip


def test_corrupt_shard_names_the_file(tmp_path):
    entry = write_shard(tmp_path / "p", "arrow", ROWS, "u")
    path = tmp_path / entry.path
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ShardError, match="p.arrow"):
        list(read_shard(path))


def test_check_row():
    assert check_row(ROWS[0], vocab_size=50, max_length=8) is None
    assert "outside [0, 6)" in check_row(ROWS[0], vocab_size=6, max_length=8)
    assert "max_length" in check_row(ROWS[0], vocab_size=50, max_length=3)
    bad = {**ROWS[0], "mask": [True]}
    assert "mask has 1 entries" in check_row(bad, 50, 8)


def test_unknown_format_version_is_refused_by_name(tmp_path, tokenizer):
    folder = make_shards(tmp_path / "s", tokenizer, n_synthetic=5)
    assert load_index(folder).format_version == 1
    index = json.loads((folder / "index.json").read_text())
    index["format_version"] = 99
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match=r"format_version 99 is not the one this maskpt reads"):
        load_index(folder)

"""Shard files (format 2): the round trip of rows through Arrow streams,
Parquet and WebDataset tars, the same bytes for the same rows, key-safe
WebDataset keys, row checks, and folders of format 1 refused with a hint."""

import json
import tarfile

import pytest

from maskpt.core.errors import UserError
from maskpt.core.storage import Storage
from preprocess.index import load_index
from preprocess.shards import (
    FORMATS,
    SCHEMA,
    ShardError,
    check_row,
    key_of,
    read_rows,
    shard_name,
    write_shard,
)
from tests.helpers import make_shards

ROWS = [
    {
        "id": f"d{i}.x/{i}-0",
        "doc_id": f"d{i}",
        "input_ids": [0, 4, 6, 2],
        "labels": [0, 5 + i, 2],
        "original_ids": [0, 5 + i, 6, 2],
        "masked": [False, True, False, False],
        "word_starts": [False, True, True, False],
        "sentence_starts": [False, True, False, False],
        "spans": [1, 2],
        "token_probs": [0, 900, 10, 0] if i % 2 else [],
    }
    for i in range(5)
]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_round_trip_and_same_bytes(tmp_path, fmt):
    store = Storage(str(tmp_path))
    entry = write_shard(store, shard_name(fmt, 0), fmt, ROWS, "000-000000")
    assert entry.path == f"{fmt}/shard-000000{FORMATS[fmt]}" and entry.stem == "shard-000000"
    assert entry.examples == 5 and entry.tokens == 20 and entry.bytes == store.size(entry.path)
    assert list(read_rows(store, entry.path, fmt)) == ROWS
    again = write_shard(store, shard_name(fmt, 1), fmt, ROWS, "000-000000")
    assert store.read_bytes(again.path) == store.read_bytes(entry.path)
    assert list(SCHEMA.names) == [
        "id",
        "doc_id",
        "input_ids",
        "labels",
        "original_ids",
        "masked",
        "word_starts",
        "sentence_starts",
        "spans",
        "token_probs",
    ]


def test_webdataset_keys_are_safe_and_unique(tmp_path):
    store = Storage(str(tmp_path))
    entry = write_shard(store, shard_name("webdataset", 0), "webdataset", ROWS, "u")
    with tarfile.open(tmp_path / entry.path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == [f"{key_of(r['id'])}.json" for r in ROWS]
    assert all(m.mtime == 0 for m in members)
    assert all(name.count(".") == 1 and "/" not in name for name in names)
    assert key_of("a.b") != key_of("a_b") and key_of("a/b") != key_of("a%2Fb")


def test_corrupt_shard_names_the_file(tmp_path):
    store = Storage(str(tmp_path))
    for fmt in FORMATS:
        entry = write_shard(store, shard_name(fmt, 0), fmt, ROWS, "u")
        path = tmp_path / entry.path
        path.write_bytes(path.read_bytes()[:100])
        with pytest.raises(ShardError, match=f"shard-000000{FORMATS[fmt]}"):
            list(read_rows(store, entry.path, fmt))


def test_check_row():
    row = ROWS[0]
    assert check_row(row, vocab_size=50, max_length=8) is None
    assert "outside [0, 6)" in check_row(row, vocab_size=6, max_length=8)
    assert "max_length" in check_row(row, vocab_size=50, max_length=3)
    assert "masked has 1 entries" in check_row({**row, "masked": [True]}, 50, 8)
    assert "spans [0, 2] are not token ranges" in check_row({**row, "spans": [0, 2]}, 50, 8)
    assert "token_probs has 1 entries" in check_row({**row, "token_probs": [3]}, 50, 8)


def test_format_1_folder_is_refused_with_how_to_rewrite_it(tmp_path, tokenizer):
    folder = make_shards(tmp_path / "s", tokenizer, n_synthetic=5)
    assert load_index(folder).format_version == 2
    index = json.loads((folder / "index.json").read_text())
    index["format_version"] = 1
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(
        UserError, match=r"format-1 shard folder.*running `maskpt preprocess` again"
    ):
        load_index(folder)
    index["format_version"] = 99
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match=r"format_version 99 is not the one this maskpt reads"):
        load_index(folder)

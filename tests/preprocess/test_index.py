"""The typed index.json: one loader, over fsspec, with typed counts and shards;
clear errors for missing, unfinished, malformed and foreign folders."""

import json

import fsspec
import pytest

from maskpt.core.errors import InputNotFound
from preprocess.index import ShardIndex, ShardIndexError, load_index
from tests.helpers import make_shards


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tokenizer):
    return make_shards(tmp_path_factory.mktemp("idx") / "s", tokenizer, n_synthetic=10, fmt="both")


def test_typed_fields_and_round_trip(folder):
    index = load_index(folder)
    assert index.policy.name == "rand_v1" and index.formats == ("arrow", "webdataset")
    assert (
        index.counts.segments_written
        == index.examples
        == sum(s.examples for s in index.shards_of("arrow"))
    )
    assert index.primary_format == "arrow"
    assert all(isinstance(s.bytes, int) for s in index.shards)
    raw = json.loads((folder / "index.json").read_text())
    assert index.as_dict() == raw
    assert ShardIndex.from_dict(raw) == index


def test_loads_over_fsspec_urls(folder):
    assert load_index(f"file://{folder}") == load_index(folder)
    fs = fsspec.filesystem("memory")
    fs.pipe("/copy/index.json", (folder / "index.json").read_bytes())
    assert load_index("memory://copy").counts == load_index(folder).counts


def test_errors_name_the_folder_and_say_what_to_do(folder, tmp_path):
    with pytest.raises(InputNotFound, match="no such shard folder"):
        load_index(tmp_path / "nope")
    (tmp_path / "half" / "_progress").mkdir(parents=True)
    with pytest.raises(ShardIndexError, match="a run is unfinished"):
        load_index(tmp_path / "half")
    (tmp_path / "other").mkdir()
    with pytest.raises(ShardIndexError, match="not a folder written by `maskpt preprocess`"):
        load_index(tmp_path / "other")
    bad = tmp_path / "bad"
    bad.mkdir()
    raw = json.loads((folder / "index.json").read_text())
    raw["shards"][0]["examples"] = "many"
    (bad / "index.json").write_text(json.dumps(raw))
    with pytest.raises(ShardIndexError, match="checksum does not match"):
        load_index(bad)
    from preprocess.index import checksum

    raw["checksum"] = checksum(raw)  # a consistent but ill-typed index
    (bad / "index.json").write_text(json.dumps(raw))
    with pytest.raises(ShardIndexError, match=r"shards\[0\]\.examples must be int"):
        load_index(bad)
    (bad / "index.json").write_text("{not json")
    with pytest.raises(ShardIndexError, match="not valid JSON"):
        load_index(bad)


def test_a_binary_index_is_a_one_line_error(tmp_path):
    """Not UTF-8 (was a UnicodeDecodeError traceback in `inspect` and `pretrain`)."""
    (tmp_path / "index.json").write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(ShardIndexError, match="index.json: not valid JSON"):
        load_index(tmp_path)

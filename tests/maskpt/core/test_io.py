"""Atomic writes leave the old file or the whole new one; claims refuse other runs."""

import json

import pytest

from maskpt.core.io import (
    FolderInUse,
    atomic_write,
    claim_spec,
    sha256_file,
    write_json_atomic,
)
from maskpt.core.storage import Storage


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def boom(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left behind
    write_json_atomic(path, {"b": 1, "a": [1]})
    assert path.read_text() == json.dumps({"a": [1], "b": 1}, indent=2) + "\n"


def test_stale_tmp_files_are_removed(tmp_path):
    (tmp_path / ".x.arrow.tmp-123").write_bytes(b"torn")
    (tmp_path / "keep.arrow").write_bytes(b"ok")
    Storage(tmp_path).remove_stale_tmp()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.arrow"]


def test_sha256_file(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert sha256_file(tmp_path / "a").startswith("ba7816bf")


def test_claim_spec_records_then_refuses_another(tmp_path):
    path = tmp_path / "run" / "spec.json"
    assert claim_spec(path, {"seed": 1, "tags": ("a",)}, "run") is False
    assert claim_spec(path, {"seed": 1, "tags": ["a"]}, "run") is True
    with pytest.raises(FolderInUse, match=r"holds another(.|\n)*seed: folder has 1, this run 2"):
        claim_spec(path, {"seed": 2, "tags": ["a"]}, "holds another")

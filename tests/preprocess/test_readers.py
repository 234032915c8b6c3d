import json

import pytest

from maskpt.core.errors import UserError
from maskpt.core.records import Document, Skip
from preprocess.readers import read_any, read_jsonl, read_text


def test_jsonl_good_and_bad_lines(tmp_path):
    p = tmp_path / "wiki.jsonl"
    lines = [
        json.dumps({"id": "1", "title": "A", "text": "Alpha."}).encode(),
        b'{"id": "2", "title": "B", "text": "caf\xe9 bad bytes"}',  # latin-1, not UTF-8
        b"{not json",
        json.dumps({"id": "4", "title": "D"}).encode(),
        json.dumps([1, 2]).encode(),
        b"",
        json.dumps({"id": 5, "text": "Five."}).encode(),
    ]
    p.write_bytes(b"\n".join(lines) + b"\n")
    out = list(read_jsonl(p))
    assert [d.id for d in out if isinstance(d, Document)] == ["1", "5"]
    skips = [s for s in out if isinstance(s, Skip)]
    assert [s.reason for s in skips] == [
        "invalid_utf8",
        "invalid_json",
        "missing_field:text",
        "invalid_json",
    ]
    assert skips[0].id == f"{p}:2" and "not UTF-8" in skips[0].detail
    assert f"{p}:4" in skips[2].detail and "'text'" in skips[2].detail


def test_text_reader_blank_line_documents(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_bytes(b"First doc line one.\nline two.\n\n\nSecond doc.\n\xff\xfe broken\n")
    out = list(read_text(p))
    docs = [d for d in out if isinstance(d, Document)]
    assert [d.text for d in docs] == ["First doc line one.\nline two.", "Second doc."]
    assert [d.id for d in docs] == ["notes-0", "notes-1"]
    assert [s.reason for s in out if isinstance(s, Skip)] == ["invalid_utf8"]


def test_read_any(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_any(tmp_path / "missing.jsonl")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(UserError, match="unknown format"):
        read_any(tmp_path / "x.parquet")
    with pytest.raises(UserError, match="is a folder"):
        read_any(tmp_path)

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
    (tmp_path / "x.csv").write_text("")
    with pytest.raises(UserError, match="unknown format"):
        read_any(tmp_path / "x.csv")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(UserError, match="x.parquet: not a Parquet file"):
        list(read_any(tmp_path / "x.parquet"))
    with pytest.raises(UserError, match="is a folder"):
        read_any(tmp_path)


def test_parquet_gz_zst_give_the_same_shards_as_jsonl(tmp_path, tokenizer_dir):
    """The inputs users have (the `wikimedia/wikipedia` Parquet layout, compressed
    JSONL) give byte-identical shards to the same records as plain JSONL, with
    the same counts, a bad record included."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess
    from tests.helpers import synthetic_texts

    texts = synthetic_texts(40, seed=3)
    rows = [{"id": str(i), "url": f"https://en.wikipedia.org/wiki?curid={i}", "title": f"T{i}",
             "text": t} for i, t in enumerate(texts)]  # fmt: skip
    rows[5]["text"] = None  # one bad record: skipped and counted in every format
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    inputs = {"jsonl": tmp_path / "w.jsonl", "gz": tmp_path / "w.jsonl.gz",
              "zst": tmp_path / "w.jsonl.zst", "parquet": tmp_path / "w.parquet"}  # fmt: skip
    inputs["jsonl"].write_bytes(lines)
    inputs["gz"].write_bytes(gzip.compress(lines))
    inputs["zst"].write_bytes(zstandard.ZstdCompressor().compress(lines))
    pq.write_table(pa.Table.from_pylist(rows), inputs["parquet"], row_group_size=8)
    indexes, shards = {}, {}
    for name, path in inputs.items():
        out = tmp_path / f"out-{name}"
        cfg = PreprocessConfig(inputs=(str(path),), output=str(out), policy="rand_v1",
                               tokenizer=tokenizer_dir, docs_per_unit=8, shard_size=50)  # fmt: skip
        indexes[name] = run_preprocess(cfg, progress=False, use_ray=False)
        shards[name] = [p.read_bytes() for p in sorted((out / "arrow").iterdir())]
    c = indexes["jsonl"].counts
    assert c.documents_read == 40 and sum(c.skipped_documents.values()) == 1
    for name in ("gz", "zst", "parquet"):
        assert indexes[name].counts == c, name
        assert shards[name] == shards["jsonl"], name

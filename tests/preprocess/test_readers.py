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
    rows = [
        {
            "id": str(i),
            "url": f"https://en.wikipedia.org/wiki?curid={i}",
            "title": f"T{i}",
            "text": t,
        }
        for i, t in enumerate(texts)
    ]
    rows[5]["text"] = None  # one bad record: skipped and counted in every format
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    inputs = {
        "jsonl": tmp_path / "w.jsonl",
        "gz": tmp_path / "w.jsonl.gz",
        "zst": tmp_path / "w.jsonl.zst",
        "parquet": tmp_path / "w.parquet",
    }
    inputs["jsonl"].write_bytes(lines)
    inputs["gz"].write_bytes(gzip.compress(lines))
    inputs["zst"].write_bytes(zstandard.ZstdCompressor().compress(lines))
    pq.write_table(pa.Table.from_pylist(rows), inputs["parquet"], row_group_size=8)
    indexes, shards = {}, {}
    for name, path in inputs.items():
        out = tmp_path / f"out-{name}"
        cfg = PreprocessConfig(
            inputs=(str(path),),
            output=str(out),
            policy="rand_v1",
            tokenizer=tokenizer_dir,
            docs_per_unit=8,
            shard_size=50,
        )
        indexes[name] = run_preprocess(cfg, progress=False, use_ray=False)
        shards[name] = [p.read_bytes() for p in sorted((out / "arrow").iterdir())]
    c = indexes["jsonl"].counts
    assert c.documents_read == 40 and sum(c.skipped_documents.values()) == 1
    for name in ("gz", "zst", "parquet"):
        assert indexes[name].counts == c, name
        assert shards[name] == shards["jsonl"], name


def _jsonl_bytes(n=20):
    return b"".join(
        json.dumps({"id": f"d{i}", "text": "word " * 300}).encode() + b"\n" for i in range(n)
    )


@pytest.mark.parametrize("suffix", [".jsonl.zst", ".jsonl.gz"])
def test_truncated_or_corrupt_compressed_jsonl_is_refused(tmp_path, suffix, tokenizer_dir):
    """A stream cut short or failing its check stops with the file named (zstd's
    own stream reader just stopped: 7 of 20 documents and exit 0), and no
    shard folder is completed from it."""
    import gzip

    import zstandard

    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess
    from preprocess.readers import InputError

    data = (
        zstandard.ZstdCompressor(write_checksum=True).compress
        if suffix.endswith("zst")
        else gzip.compress
    )(_jsonl_bytes())
    whole, cut, bad = (tmp_path / f"{n}{suffix}" for n in ("whole", "cut", "bad"))
    whole.write_bytes(data)
    cut.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2 : len(data) // 2 + 4] = bytes(
        b ^ 0xFF for b in flipped[len(data) // 2 : len(data) // 2 + 4]
    )
    bad.write_bytes(bytes(flipped))
    assert len(list(read_jsonl(whole))) == 20
    for path in (cut, bad):
        with pytest.raises(InputError, match=rf"{path.name}: truncated or corrupt compressed"):
            list(read_jsonl(path))
    cfg = PreprocessConfig(
        inputs=(str(cut),),
        output=str(tmp_path / "o"),
        policy="rand_v1",
        tokenizer=tokenizer_dir,
        docs_per_unit=50,
    )
    with pytest.raises(InputError, match="truncated"):
        run_preprocess(cfg, progress=False, use_ray=False)
    assert not (tmp_path / "o" / "index.json").exists()


def test_zstd_of_several_frames_reads_whole(tmp_path):
    import zstandard

    data, c = _jsonl_bytes(), zstandard.ZstdCompressor()
    path = tmp_path / "frames.jsonl.zst"
    path.write_bytes(c.compress(data[:5000]) + c.compress(data[5000:]))
    assert [d.id for d in read_jsonl(path)] == [f"d{i}" for i in range(20)]


def test_a_folder_given_as_input_is_a_one_line_error(tmp_path, tokenizer_dir):
    """Refused by name before the input hashing (which raised IsADirectoryError)."""
    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess

    (tmp_path / "dump").mkdir()
    cfg = PreprocessConfig(
        inputs=(str(tmp_path / "dump"),),
        output=str(tmp_path / "o"),
        policy="rand_v1",
        tokenizer=tokenizer_dir,
    )
    with pytest.raises(UserError, match="dump is a folder; give the files in it"):
        run_preprocess(cfg, progress=False, use_ray=False)


def test_parquet_with_a_corrupt_row_group_or_a_wrong_column_type_is_named(tmp_path):
    """A corrupt snappy block was an OSError traceback; a `text` column of
    integers was counted as `missing_field:text` on every row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from preprocess.readers import InputError, read_parquet

    texts = ["some words here " * 20 + str(i) for i in range(2000)]
    pq.write_table(
        pa.table({"id": [f"d{i}" for i in range(2000)], "text": texts}),
        tmp_path / "a.parquet",
        row_group_size=500,
        compression="snappy",
    )
    data = bytearray((tmp_path / "a.parquet").read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 200):
        data[i] ^= 0x5A
    (tmp_path / "bad.parquet").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad.parquet: row group \d \(rows from \d+\) cannot"):
        list(read_parquet(tmp_path / "bad.parquet"))
    pq.write_table(pa.table({"id": ["a"], "text": [3]}), tmp_path / "ints.parquet")
    with pytest.raises(UserError, match="column 'text' holds int64, not strings"):
        list(read_parquet(tmp_path / "ints.parquet"))

"""Inputs on fsspec storage: a multistream dump with its index, JSONL (plain,
.gz, .zst), Parquet and text read by URL give the same units and the same
shards as the same files on a local disk. Here on fsspec's in-memory
filesystem without Ray; tests/preprocess/test_s3_output.py does it on S3 with
Ray workers reading their own byte ranges."""

from __future__ import annotations

import gzip
import json

import fsspec
import pytest

from maskpt.core.errors import InputNotFound
from maskpt.core.storage import RemotePath, input_path
from preprocess.config import PreprocessConfig
from preprocess.multistream import write_multistream
from preprocess.pipeline import run_preprocess
from preprocess.plan import plan_units
from tests.helpers import synthetic_texts
from tests.preprocess.test_wikipedia import dump, page


def _inputs(folder):
    """The same kind of records in every format the planner cuts."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    texts = synthetic_texts(30, seed=11)
    rows = [{"id": str(i), "title": f"T{i}", "text": t} for i, t in enumerate(texts)]
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    files = {
        "w.jsonl": lines,
        "w.jsonl.gz": gzip.compress(lines),
        "w.jsonl.zst": zstandard.ZstdCompressor().compress(lines),
        "w.txt": "\n\n".join(texts[:10]).encode(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    pq.write_table(pa.Table.from_pylist(rows), folder / "w.parquet", row_group_size=7)
    xml = folder / "wiki.xml"
    pages = [
        page(i + 1, f"Page {i}", f"'''Page {i}''' is [[a|an]] article. {t}")
        for i, t in enumerate(texts)
    ]
    xml.write_text(dump(pages))
    write_multistream(xml, folder / "wiki-multistream.xml.bz2", pages_per_stream=4)
    xml.unlink()
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def remote(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    names = _inputs(local)
    fs = fsspec.filesystem("memory")
    base = f"memory://maskpt-test-{tmp_path.name}"
    for n in names:
        fs.pipe(f"{base}/{n}", (local / n).read_bytes())
    yield local, base, names
    fs.rm(base, recursive=True)


def test_remote_path_names_and_sizes(remote):
    local, base, _ = remote
    p = input_path(f"{base}/w.jsonl.gz")
    assert isinstance(p, RemotePath) and str(p) == f"{base}/w.jsonl.gz"
    assert (p.name, p.suffix, p.stem) == ("w.jsonl.gz", ".gz", "w.jsonl")
    assert p.stat().st_size == (local / "w.jsonl.gz").stat().st_size and p.is_file()
    assert input_path(f"file://{local}/w.txt") == local / "w.txt"


def test_units_of_a_remote_input_are_the_local_units(remote):
    local, base, names = remote
    for name in names:
        if name.endswith("-index.txt.bz2"):
            continue
        here = list(plan_units([str(local / name)], 5, warn=lambda _: None))
        there = list(plan_units([f"{base}/{name}"], 5, warn=lambda _: None))
        key = [(u.id, u.kind, u.start, u.end, u.first_line, u.size) for u in here]
        assert key == [(u.id, u.kind, u.start, u.end, u.first_line, u.size) for u in there], name
        assert [list(u.read()) for u in here] == [list(u.read()) for u in there], name
    kinds = {
        u.kind
        for u in plan_units(
            [f"{base}/{n}" for n in names if "index" not in n], 5, warn=lambda _: None
        )
    }
    assert kinds == {"multistream", "lines", "parquet", "file", "records"}


def test_remote_inputs_give_the_local_shards(remote, tmp_path, tokenizer_dir):
    local, base, names = remote
    inputs = [n for n in names if "index" not in n]
    out = {}
    for where, prefix in (("local", str(local)), ("remote", base)):
        cfg = PreprocessConfig(
            inputs=tuple(f"{prefix}/{n}" for n in inputs),
            output=str(tmp_path / f"out-{where}"),
            policy="orig_v1",
            tokenizer=tokenizer_dir,
            docs_per_unit=5,
            shard_size=40,
        )
        index = run_preprocess(cfg, progress=False, use_ray=False)
        shards = sorted((tmp_path / f"out-{where}" / "arrow").iterdir())
        out[where] = (index, [p.read_bytes() for p in shards])
    (li, ls), (ri, rs) = out["local"], out["remote"]
    assert ri.counts == li.counts and li.counts.documents_read > 100
    assert rs == ls
    assert [i.path for i in ri.inputs] == [f"{base}/{n}" for n in inputs]
    assert [i.sha256 for i in ri.inputs] == [i.sha256 for i in li.inputs]


def test_a_missing_remote_input_is_refused_before_any_work(tmp_path, tokenizer_dir):
    cfg = PreprocessConfig(
        inputs=("memory://maskpt-nowhere/x.jsonl",),
        output=str(tmp_path / "o"),
        policy="rand_v1",
        tokenizer=tokenizer_dir,
    )
    with pytest.raises(InputNotFound, match="memory://maskpt-nowhere/x.jsonl"):
        run_preprocess(cfg, progress=False, use_ray=False)
    assert not (tmp_path / "o").exists()


def test_remote_parquet_files_are_closed_after_planning_and_reading(remote, monkeypatch):
    """pyarrow closes only files it opened itself: the planner's footer read
    and the reader must close the remote file objects they open."""
    from preprocess.readers import read_parquet

    _, base, _ = remote
    opened, closed = [], set()
    real_open = RemotePath.open

    def tracking_open(self, mode="rb"):  # memory:// files ignore close(): record the calls
        f = real_open(self, mode)
        real_close = f.close

        def close():
            closed.add(id(f))
            real_close()

        f.close = close
        opened.append(f)
        return f

    monkeypatch.setattr(RemotePath, "open", tracking_open)
    units = list(plan_units((f"{base}/w.parquet",), 7))
    rows = [r for u in units for r in u.read()]
    assert len(units) > 1 and len(rows) == 30
    assert list(read_parquet(f"{base}/w.parquet"))
    assert opened and all(id(f) in closed for f in opened)


def test_an_unreachable_http_input_says_so_not_that_it_does_not_exist(tmp_path, tokenizer_dir):
    """fsspec reports a server that does not answer as a missing file."""
    import socket

    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/dump.jsonl"
    cfg = PreprocessConfig(
        inputs=(url,), output=str(tmp_path / "o"), policy="rand_v1", tokenizer=tokenizer_dir
    )
    with pytest.raises(InputNotFound, match=rf"cannot reach 127.0.0.1:{port}"):
        run_preprocess(cfg, progress=False, use_ray=False)

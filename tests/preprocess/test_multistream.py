"""Multistream Wikipedia dumps, made from the real dump sample the way
Wikimedia lays them out (bz2 streams of 100 pages plus an index): the
workers read their own byte ranges, the driver reads only the index, and the
shards are byte-identical whatever the number of workers or nodes."""

from __future__ import annotations

import bz2
import os
import subprocess
import sys

import pytest

from preprocess.config import PreprocessConfig
from preprocess.multistream import index_path, read_range, stream_ranges, write_multistream
from preprocess.pipeline import planned, run_preprocess
from preprocess.plan import plan_units
from preprocess.wikipedia import DumpError, RawPage, read_wikipedia_pages
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def sample(shared_data):
    return shared_data / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"


def _multistream(sample, folder, per_stream):
    dump = folder / "enwiki-sample-pages-articles-multistream.xml.bz2"
    write_multistream(sample, dump, pages_per_stream=per_stream)
    return dump


def _key(p):
    return (p.id, p.title, p.wikitext) if isinstance(p, RawPage) else (p.id, p.reason, p.detail)


def test_streams_of_100_pages_read_as_the_single_stream_dump(sample, tmp_path):
    dump = _multistream(sample, tmp_path, 100)
    index = index_path(dump)
    assert index is not None and index.name.endswith("-multistream-index.txt.bz2")
    lines = bz2.decompress(index.read_bytes()).decode().splitlines()
    assert len(lines) == 206 and lines[1] == f"{lines[1].split(':')[0]}:12:Anarchism"
    ranges = stream_ranges(dump, index)
    assert [n for _, _, n in ranges] == [100, 100, 6]  # pages per stream, from the index
    pages = [p for s, e, _ in ranges for p in read_range(dump, s, e)]
    assert [_key(p) for p in pages] == [_key(p) for p in read_wikipedia_pages(sample)]
    # units are whole streams holding at least docs_per_unit pages
    units = list(plan_units([str(dump)], 150))
    assert [(u.kind, u.size) for u in units] == [("multistream", 200), ("multistream", 6)]


def test_an_index_from_another_dump_is_a_clear_error(sample, tmp_path):
    dump = _multistream(sample, tmp_path, 100)
    s, e, _ = stream_ranges(dump, index_path(dump))[1]
    with pytest.raises(DumpError, match=r"bytes \d+-\d+: not whole bz2 streams"):
        list(read_range(dump, s + 1, e))
    bad = tmp_path / "x-multistream.xml.bz2"
    bad.write_bytes(dump.read_bytes()[:1000])
    index_path(dump).rename(index_path(bad) or bad.with_name("x-multistream-index.txt.bz2"))
    with pytest.raises(DumpError, match="past the end"):
        list(plan_units([str(bad)], 10))


def _cfg(dump, out, tokenizer_dir, **kw):
    return PreprocessConfig(
        inputs=(str(dump),),
        output=str(out),
        policy="orig_v1",
        tokenizer=tokenizer_dir,
        docs_per_unit=25,
        shard_size=400,
        **kw,
    )


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "_progress" not in p.parts
    }


def test_progress_total_is_known_from_the_index(sample, tmp_path, tokenizer_dir):
    dump = _multistream(sample, tmp_path, 25)
    units, total = planned(_cfg(dump, tmp_path / "o", tokenizer_dir))
    assert total == 206 and len(units) == 9
    units, total = planned(_cfg(sample, tmp_path / "o", tokenizer_dir))  # single stream
    assert total is None


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_same_shards_for_any_number_of_workers(sample, tmp_path, tokenizer_dir, workers, ray_local):
    dump = _multistream(sample, tmp_path, 25)
    one = run_preprocess(_cfg(dump, tmp_path / "one", tokenizer_dir), progress=False, use_ray=False)
    assert one.counts.documents_read == 206
    many = run_preprocess(
        _cfg(dump, tmp_path / "many", tokenizer_dir, workers=workers), progress=False
    )
    assert many == one
    assert _files(tmp_path / "many") == _files(tmp_path / "one")


@pytest.mark.slow
def test_same_shards_from_4_workers_on_two_simulated_nodes(sample, tmp_path, tokenizer_dir):
    from ray.cluster_utils import Cluster

    dump = _multistream(sample, tmp_path, 25)
    run_preprocess(_cfg(dump, tmp_path / "one", tokenizer_dir), progress=False, use_ray=False)
    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    try:
        for _ in range(2):
            c.add_node(num_cpus=2)
        c.wait_for_nodes()
        # a driver of its own, joining the cluster (this process may hold the shared local Ray)
        cmd = [
            sys.executable,
            "-m",
            "maskpt",
            "preprocess",
            "--input",
            str(dump),
            "--output",
            str(tmp_path / "nodes"),
            "--policy",
            "orig_v1",
            "--tokenizer",
            tokenizer_dir,
            "--docs-per-unit",
            "25",
            "--shard-size",
            "400",
            "--workers",
            "4",
            "--address",
            c.address,
            "--quiet",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        c.shutdown()
    assert _files(tmp_path / "nodes") == _files(tmp_path / "one")

"""Shard format 2 read without maskpt's code: Hugging Face datasets, pyarrow,
WebDataset, wids and Ray Data each read a folder written by `maskpt
preprocess` and give the rows maskpt's own reader gives."""

from __future__ import annotations

import json

import pytest

from maskpt.cli import main
from preprocess.index import load_index
from preprocess.inspection import iter_rows
from tests.helpers import bundled_texts, synthetic_texts

COLUMNS = ("input_ids", "labels", "original_ids", "masked")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tokenizer):
    """Every format, from documents whose ids need escaping as WebDataset keys."""
    tmp = tmp_path_factory.mktemp("eco")
    texts = bundled_texts() + synthetic_texts(30, seed=4)
    with (tmp / "docs.jsonl").open("w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"Q{i}.v2/x {i}", "title": "t", "text": t}) + "\n")
    out = tmp / "all"
    assert (
        main(
            [
                "preprocess",
                "--input",
                str(tmp / "docs.jsonl"),
                "--output",
                str(out),
                "--policy",
                "orig_v1",
                "--tokenizer",
                tokenizer.name_or_path,
                "--format",
                "all",
                "shard_size=17",
                "max_length=64",
                "--no-ray",
                "--quiet",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def expected(folder):
    rows = {r["id"]: tuple(r[c] for c in COLUMNS) for _, _, r in iter_rows(folder)}
    assert len(rows) > 40 and len(load_index(folder).shards_of("arrow")) > 2
    return rows


def _as_map(rows) -> dict:
    return {r["id"]: tuple(list(r[c]) for c in COLUMNS) for r in rows}


def _paths(folder, fmt) -> list[str]:
    return [str(folder / s.path) for s in load_index(folder).shards_of(fmt)]


def test_datasets_from_file_memory_maps_each_arrow_shard(folder, expected):
    from datasets import Dataset, concatenate_datasets

    ds = concatenate_datasets([Dataset.from_file(p) for p in _paths(folder, "arrow")])
    from preprocess.shards import SCHEMA

    assert list(ds.column_names) == SCHEMA.names
    assert _as_map(ds) == expected


def test_datasets_load_dataset_arrow_streaming(folder, expected):
    from datasets import load_dataset

    ds = load_dataset(
        "arrow", data_files=str(folder / "arrow" / "*.arrow"), split="train", streaming=True
    )
    assert _as_map(ds) == expected


def test_pyarrow_dataset_over_the_parquet_folder(folder, expected):
    import pyarrow.dataset as pads

    table = pads.dataset(folder / "parquet", format="parquet").to_table()
    assert _as_map(table.to_pylist()) == expected


def test_webdataset_with_brace_urls(folder, expected):
    import webdataset as wds

    tars = _paths(folder, "webdataset")
    assert [p.rsplit("/", 1)[-1] for p in tars] == [f"shard-{i:06d}.tar" for i in range(len(tars))]
    url = str(folder / "webdataset" / f"shard-{{000000..{len(tars) - 1:06d}}}.tar")
    samples = list(wds.WebDataset(url, shardshuffle=False, empty_check=False).decode())
    from preprocess.shards import key_of

    assert all(s["__key__"] == key_of(s["json"]["id"]) for s in samples)
    assert len({s["__key__"] for s in samples}) == len(samples) == len(expected)
    assert _as_map(s["json"] for s in samples) == expected
    listed = (folder / "webdataset-shards.txt").read_text().split()
    assert [str(folder / p) for p in listed] == tars


def test_wids_reads_the_index(folder, expected):
    import wids

    ds = wids.ShardListDataset(str(folder / "webdataset-wids.json"))
    assert len(ds) == len(expected)
    import json

    rows = [
        json.loads(ds[i][".json"].read()) if hasattr(ds[i][".json"], "read") else ds[i][".json"]
        for i in range(len(ds))
    ]
    assert _as_map(rows) == expected


def test_ray_data_reads_parquet_and_webdataset(folder, expected, ray_local):
    import ray.data

    parquet = ray.data.read_parquet(str(folder / "parquet")).take_all()
    assert _as_map(parquet) == expected
    tars = ray.data.read_webdataset(_paths(folder, "webdataset")).take_all()
    assert len(tars) == len(expected)
    assert _as_map(t["json"] for t in tars) == expected


def test_maskpts_trainer_stream_reads_every_format_alike(folder, expected):
    from train.data import open_source

    for fmt in ("arrow", "parquet", "webdataset"):
        src = open_source(str(folder))
        src.shards = load_index(folder).shards_of(fmt)
        from train.data import ShardStream

        stream = ShardStream(src, seed=0, shuffle=False)
        rows = [stream.example(p) for p in range(src.size)]
        assert _as_map(rows) == expected, fmt

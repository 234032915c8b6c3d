"""Output to S3 (a local moto server): Ray workers write the shards, markers
and index.json there, `inspect --verify` reads them back, and the rows are
the rows of a local run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.helpers import ROOT, bundled_texts, write_jsonl

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env():
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    import s3fs

    s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]}, key="test", secret="test"
    ).mkdir("maskpt-test")
    yield env
    server.stop()


@pytest.mark.slow
def test_preprocess_to_s3_on_ray_then_verify(s3_env, tmp_path, tokenizer_dir):
    docs = write_jsonl(tmp_path / "docs.jsonl", bundled_texts())
    env = {**os.environ, **s3_env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    url = "s3://maskpt-test/shards/rand"
    common = [
        "--input",
        str(docs),
        "--tokenizer",
        tokenizer_dir,
        "--policy",
        "rand_v1",
        "--format",
        "all",
        "--quiet",
        "docs_per_unit=5",
        "--workers",
        "2",
    ]

    def maskpt(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "maskpt", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout

    maskpt("preprocess", *common, "--output", url)
    assert "OK s3://maskpt-test/shards/rand" in maskpt("inspect", url, "--verify")
    maskpt("preprocess", *common, "--output", str(tmp_path / "local"))
    import json

    import s3fs

    fs = s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": s3_env["AWS_ENDPOINT_URL"]}, key="test", secret="test"
    )
    remote = json.loads(fs.cat(f"{url}/index.json"))
    local = json.loads((tmp_path / "local" / "index.json").read_text())
    assert [s["sha256"] for s in remote["shards"]] == [s["sha256"] for s in local["shards"]]
    assert not fs.exists(f"{url}/_progress/units") or not fs.ls(f"{url}/_progress/units")


@pytest.mark.slow
def test_inputs_on_s3_read_by_ray_workers_give_the_local_shards(s3_env, tmp_path, tokenizer_dir):
    """A multistream dump with its index and a JSONL file on S3: the driver
    plans from the index and line ends there, 2 Ray workers fetch their own
    byte ranges, and the shards equal those of the same files on disk."""
    import json

    import s3fs

    from tests.preprocess.test_remote_inputs import _inputs

    local = tmp_path / "in"
    local.mkdir()
    names = [
        n
        for n in _inputs(local)
        if n in ("w.jsonl", "w.parquet") or n.startswith("wiki-multistream")
    ]
    fs = s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": s3_env["AWS_ENDPOINT_URL"]}, key="test", secret="test"
    )
    for n in names:
        fs.pipe(f"maskpt-test/inputs/{n}", (local / n).read_bytes())
    inputs = [n for n in names if "index" not in n]
    env = {**os.environ, **s3_env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    indexes = {}
    for where, prefix in (("s3", "s3://maskpt-test/inputs"), ("local", str(local))):
        out = tmp_path / f"out-{where}"
        args = [
            "preprocess",
            "--tokenizer",
            tokenizer_dir,
            "--policy",
            "orig_v1",
            "--quiet",
            "--workers",
            "2",
            "--output",
            str(out),
            "docs_per_unit=4",
            "--input",
            *[f"{prefix}/{n}" for n in inputs],
        ]
        proc = subprocess.run(
            [sys.executable, "-m", "maskpt", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert "cannot be split" not in proc.stderr
        indexes[where] = json.loads((out / "index.json").read_text())
    s3, here = indexes["s3"], indexes["local"]
    assert [i["path"] for i in s3["inputs"]] == [f"s3://maskpt-test/inputs/{n}" for n in inputs]
    assert s3["counts"] == here["counts"] and here["counts"]["documents_read"] >= 60
    assert [s["sha256"] for s in s3["shards"]] == [s["sha256"] for s in here["shards"]]

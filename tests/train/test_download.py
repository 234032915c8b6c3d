"""`maskpt data download` against local file:// URLs: unpacking, the
manifest, verification by the loaders, and errors that say what to do."""

from __future__ import annotations

import bz2
import json
import zipfile

import pytest

from train import download as dl
from train.tasks import TaskDataError

QUARTZ = {
    "id": "q1",
    "question": {
        "stem": "Which is warmer?",
        "choices": [{"label": "A", "text": "sun"}, {"label": "B", "text": "ice"}],
    },
    "para": "The sun is hot.",
    "answerKey": "A",
}


def test_zip_members_are_unpacked_and_verified(tmp_path, monkeypatch):
    archive = tmp_path / "quartz.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for split in ("train", "dev", "test"):
            z.writestr(f"quartz-dataset-v1-aug2019/{split}.jsonl", json.dumps(QUARTZ) + "\n")
        z.writestr("quartz-dataset-v1-aug2019/README", "x")
    members = {
        f"quartz-dataset-v1-aug2019/{s}.jsonl": f"{s}.jsonl" for s in ("train", "dev", "test")
    }
    monkeypatch.setitem(dl.SOURCES, "quartz", [(archive.as_uri(), members)])
    out = tmp_path / "out"
    assert dl.download("quartz", out, progress=False) == {"train": 1, "dev": 1, "test": 1}
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["train.jsonl"]["sha256"] == dl.sha256(out / "train.jsonl")
    assert not (out / "README").exists()


def test_bz2_file_is_decompressed(tmp_path, monkeypatch):
    rec = [{"url": "u", "targetValue": "(list (description Paris))", "utterance": "capital?"}]
    sources = []
    for split in ("train", "test"):
        p = tmp_path / f"wq.{split}.json.bz2"
        p.write_bytes(bz2.compress(json.dumps(rec).encode()))
        sources.append((p.as_uri(), {"": f"webquestions.examples.{split}.json"}))
    monkeypatch.setitem(dl.SOURCES, "wq", sources)
    sizes = dl.download("wq", tmp_path / "out", progress=False)
    assert sizes == {"train": 1, "dev": 0, "test": 1}  # 1 example: all of it is the head


def test_malformed_download_and_missing_network_are_clear(tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    monkeypatch.setitem(
        dl.SOURCES, "nq", [(bad.as_uri(), {"": f"NQ-open.{s}.jsonl"}) for s in ("train", "dev")]
    )
    with pytest.raises(TaskDataError, match=r"NQ-open.train.jsonl:1: not a JSON line"):
        dl.download("nq", tmp_path / "out", progress=False)
    monkeypatch.setitem(dl.SOURCES, "nq", [("file:///nonexistent/x.jsonl", {"": "a.jsonl"})])
    with pytest.raises(OSError, match="put a.jsonl into"):
        dl.download("nq", tmp_path / "out2", progress=False, force=True)
    with pytest.raises(TaskDataError, match="unknown task"):
        dl.download("squad", tmp_path)


def test_dpr_file_is_kept_gzipped_and_policy_training_reads_it(tmp_path, monkeypatch):
    from collections import Counter

    from tests.train.task_fixtures import write_nq
    from train.policy_sources import task_examples

    src = tmp_path / "src"
    src.mkdir()
    write_nq(src, overlap=1)
    names = ("NQ-open.train.jsonl", "NQ-open.dev.jsonl", "biencoder-nq-train.json.gz")
    monkeypatch.setitem(dl.SOURCES, "nq", [((src / n).as_uri(), {"": n}) for n in names])
    out = tmp_path / "out"
    dl.download("nq", out, progress=False)
    assert (out / names[2]).read_bytes() == (src / names[2]).read_bytes()
    dropped = Counter()
    assert task_examples("nq", out, "", dropped) and dropped["in_finetune_eval"] == 1
    assert set(json.loads((out / "MANIFEST.json").read_text())) >= set(names)

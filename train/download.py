"""`maskpt data download TASK DIR`: fetch a task's official release files
into DIR, in the layout `train/tasks.py` reads, and verify them.

Verification: every split parses with the task's loader (a malformed file
is an error naming it), the split sizes are printed, and the sha256 of each
file is recorded in DIR/MANIFEST.json; a later download that yields
different bytes says so. Archives are unpacked and only the files the
loader needs are kept. Where there is no network, put the files in DIR by
hand: the loaders only need the folder.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from train.tasks import TASKS, TaskDataError, get_task, load_split

KILT = "http://dl.fbaipublicfiles.com/KILT"
DPR = "https://dl.fbaipublicfiles.com/dpr/data/retriever"
NQ = "https://raw.githubusercontent.com/google-research-datasets/natural-questions/master/nq_open"
WQ = "https://nlp.stanford.edu/static/software/sempre/release-emnlp2013/lib/data/webquestions/dataset_11"

# task -> list of (url, {member in the download: file name in DIR}); a plain
# file's member key is "".
SOURCES: dict[str, list[tuple[str, dict[str, str]]]] = {
    "nq": [(f"{NQ}/NQ-open.{s}.jsonl", {"": f"NQ-open.{s}.jsonl"}) for s in ("train", "dev")]
    + [(f"{DPR}/biencoder-nq-train.json.gz", {"": "biencoder-nq-train.json.gz"})],
    "tqa": [
        (
            "https://nlp.cs.washington.edu/triviaqa/data/triviaqa-unfiltered.tar.gz",
            {
                f"triviaqa-unfiltered/unfiltered-web-{s}.json": f"unfiltered-web-{s}.json"
                for s in ("train", "dev")
            },
        ),
        (f"{DPR}/biencoder-trivia-train.json.gz", {"": "biencoder-trivia-train.json.gz"}),
    ],
    "wq": [
        (f"{WQ}/webquestions.examples.{s}.json.bz2", {"": f"webquestions.examples.{s}.json"})
        for s in ("train", "test")
    ],
    "ay2": [
        (f"{KILT}/aidayago2-{s}-kilt.jsonl", {"": f"aidayago2-{s}-kilt.jsonl"})
        for s in ("train", "dev")
    ],
    "zsre": [
        (f"{KILT}/structured_zeroshot-{s}-kilt.jsonl", {"": f"structured_zeroshot-{s}-kilt.jsonl"})
        for s in ("train", "dev")
    ],
    "wow": [(f"{KILT}/wow-{s}-kilt.jsonl", {"": f"wow-{s}-kilt.jsonl"}) for s in ("train", "dev")],
    "ropes": [
        (
            "https://ropes-dataset.s3-us-west-2.amazonaws.com/train_and_dev/"
            "ropes-train-dev-v1.0.tar.gz",
            {f"ropes-train-dev-v1.0/{s}-v1.0.json": f"{s}-v1.0.json" for s in ("train", "dev")},
        )
    ],
    "wiqa": [
        (
            "https://ai2-public-datasets.s3.amazonaws.com/wiqa/wiqa-dataset-v2-october-2019.zip",
            {f"{s}.jsonl": f"{s}.jsonl" for s in ("train", "dev", "test")},
        )
    ],
    # policy training for zsre and wow reads the provenance paragraphs from it (35 GB)
    "kilt_knowledge_source": [
        (f"{KILT}/kilt_knowledgesource.json", {"": "kilt_knowledgesource.json"})
    ],
    "quartz": [
        (
            "https://ai2-public-datasets.s3.amazonaws.com/quartz/quartz-dataset-v1-aug2019.zip",
            {
                f"quartz-dataset-v1-aug2019/{s}.jsonl": f"{s}.jsonl"
                for s in ("train", "dev", "test")
            },
        )
    ],
}


def _fetch(url: str, dest: Path, progress: bool) -> None:
    with urllib.request.urlopen(url, timeout=60) as resp, dest.open("wb") as f:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            disable=not progress,
        ) as bar:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))


def _unpack(archive: Path, url: str, members: dict[str, str], folder: Path) -> None:
    """Copy the wanted members to folder; a member is matched by its path's
    end so that a different top-level folder name in the archive still works."""

    def want(name: str) -> str | None:
        return next((v for k, v in members.items() if name.endswith(k)), None)

    found = set()
    if url.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if (target := want(name)) and target not in found:
                    with z.open(name) as src, (folder / target).open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found.add(target)
    else:
        with tarfile.open(archive) as t:
            for m in t:
                if m.isfile() and (target := want(m.name)) and target not in found:
                    with t.extractfile(m) as src, (folder / target).open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found.add(target)
    missing = set(members.values()) - found
    if missing:
        raise ValueError(f"{url}: the archive lacks {', '.join(sorted(missing))}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(task: str, folder: Path) -> dict[str, int]:
    """Split sizes; raises TaskDataError naming a missing or malformed file."""

    if task not in TASKS:  # a policy-training resource, not a task
        return {}
    return {s: len(load_split(task, folder, s)) for s in get_task(task).files}


def download(task: str, folder: str | Path, progress: bool = True, force: bool = False) -> dict:
    if task not in SOURCES:
        raise TaskDataError(f"unknown task {task!r}; tasks: {', '.join(SOURCES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for url, members in SOURCES[task]:
        targets = list(members.values())
        if not force and all((folder / t).exists() for t in targets):
            continue
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            raw = Path(tmp) / url.rsplit("/", 1)[-1]
            try:
                _fetch(url, raw, progress)
            except OSError as exc:
                raise OSError(
                    f"{task}: could not download {url} ({exc}); put {', '.join(targets)} into "
                    f"{folder} by hand"
                ) from exc
            if "" in members:
                opener = bz2.open if url.endswith(".bz2") else open
                with opener(raw, "rb") as src, (folder / members[""]).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                _unpack(raw, url, members, folder)
        for t in targets:
            digest = sha256(folder / t)
            old = manifest.get(t, {}).get("sha256")
            if old and old != digest:
                print(f"warning: {folder / t} differs from the earlier download ({old[:12]}...)")
            manifest[t] = {"url": url, "sha256": digest, "bytes": (folder / t).stat().st_size}
    sizes = verify(task, folder)
    manifest["_splits"] = {**manifest.get("_splits", {}), task: sizes}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return sizes

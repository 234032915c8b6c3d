"""Shard format 2 against format 1: bytes on disk per format, what a
WebDataset tar spends its bytes on, and the trainer's reader throughput —
format 1 read by the revision that wrote it, format 2 by this tree, the same
documents, tokenizer and masks, in one run.

    python -m bench.shard_formats [--against e1f0789] [--repeat 3] [--micro-steps 300]

Input: the Wikipedia dump sample in ../shared/data (or MASKPT_SHARED_DATA)
when present, else the bundled paragraphs, `--repeat` times; rand_v1 masks,
128-token segments. The reader number is examples/s of
`PretrainStream.micro_batch` + `collate` (micro-batch 32, shuffled), the
median of `--rounds` alternating rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITE = """
import sys
from preprocess.config import PreprocessConfig
from preprocess.pipeline import run_preprocess
inp, tok, out, fmt = sys.argv[1:5]
run_preprocess(PreprocessConfig(inputs=(inp,), output=out, policy="rand_v1", tokenizer=tok,
               format=fmt, shard_size=2000, docs_per_unit=50), progress=False, use_ray=False)
"""
READ = """
import sys, time
from train.batches import collate_micro as collate
from train.data import PretrainStream, open_source
folder, steps = sys.argv[1], int(sys.argv[2])
src = open_source(folder)
stream = PretrainStream([src], 32, 0, 1, seed=0)
pad = 1
collate(stream.micro_batch(0), pad)
t = time.perf_counter()
for k in range(1, steps + 1):
    collate(stream.micro_batch(k), pad)
print(steps * 32 / (time.perf_counter() - t))
"""


def run(tree: Path, code: str, *args) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def corpus(tmp: Path, repeat: int) -> Path:
    """JSONL documents: the dump sample's articles (or the bundled paragraphs) x repeat."""
    from maskpt.core.records import Document
    from maskpt.core.resources import bundled_texts

    shared = Path(os.environ.get("MASKPT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    dump = shared / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
    if dump.exists():
        from preprocess.wikipedia import read_wikipedia_dump

        texts = [d.text for d in read_wikipedia_dump(dump) if isinstance(d, Document)]
    else:
        texts = bundled_texts()
    path = tmp / "docs.jsonl"
    with path.open("w") as f:
        for r in range(repeat):
            for i, t in enumerate(texts):
                f.write(json.dumps({"id": f"{r}-{i}", "text": t}) + "\n")
    return path


def tar_anatomy(folder: Path) -> dict:
    """Bytes of the folder's tars: payload vs 512-byte headers vs block padding."""
    total = payload = members = 0
    for tar_path in sorted(folder.rglob("*.tar")):
        total += tar_path.stat().st_size
        with tarfile.open(tar_path) as tar:
            for m in tar:
                members += 1
                payload += m.size
    headers = 512 * members
    return {
        "bytes": total,
        "payload": payload,
        "headers": headers,
        "padding_and_end": total - payload - headers,
        "members": members,
    }


def folder_bytes(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--against", default="e1f0789", help="revision that writes format 1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--micro-steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from maskpt.core.resources import bundled_texts
    from maskpt.core.tokenizer import train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.against], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        tok = tmp / "tok"
        train_tokenizer(bundled_texts(), tok, vocab_size=8000, min_frequency=1)
        docs = corpus(tmp, args.repeat)
        folders = {"format 1 (arrow file)": (old, tmp / "f1", "both")}
        for fmt in ("arrow", "parquet", "webdataset"):
            folders[f"format 2 ({fmt})"] = (ROOT, tmp / f"f2-{fmt}", fmt)
        for tree, out, fmt in folders.values():
            run(tree, WRITE, docs, tok, out, fmt)
        rows = json.loads((tmp / "f2-arrow" / "index.json").read_text())["counts"]
        n = rows["segments_written"]
        print(
            f"{n} rows, {rows['tokens_written']} tokens ({docs.stat().st_size / 1e6:.1f} MB "
            f"of text)\n"
        )
        sizes = {
            "format 1 arrow (IPC file)": folder_bytes(tmp / "f1", "*.arrow"),
            "format 1 webdataset (5 members/row)": folder_bytes(tmp / "f1", "*.tar"),
            "format 2 arrow (IPC stream)": folder_bytes(tmp / "f2-arrow", "*.arrow"),
            "format 2 parquet (zstd)": folder_bytes(tmp / "f2-parquet", "*.parquet"),
            "format 2 webdataset (1 json/row)": folder_bytes(tmp / "f2-webdataset", "*.tar"),
        }
        base = sizes["format 2 arrow (IPC stream)"]
        for name, b in sizes.items():
            print(f"{name:38s} {b / 1e6:8.2f} MB  {b / n:7.0f} B/row  {b / base:5.2f}x arrow")
        for label, folder in (("format 1", tmp / "f1"), ("format 2", tmp / "f2-webdataset")):
            print(f"{label} tar anatomy: {json.dumps(tar_anatomy(folder))}")
        rates = {name: [] for name in folders}
        for _ in range(args.rounds):
            for name, (tree, out, _) in folders.items():
                rates[name].append(float(run(tree, READ, out, args.micro_steps)))
        print()
        ref = statistics.median(rates["format 1 (arrow file)"])
        for name, r in rates.items():
            med = statistics.median(r)
            print(f"reader {name:24s} {med:10,.0f} examples/s  {med / ref:5.2f}x format 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())

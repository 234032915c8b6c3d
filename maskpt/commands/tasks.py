"""`maskpt data`, `maskpt report` and `maskpt train-policy`: downstream task
data, the results table, and the learned policies' trainers."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from pathlib import Path

from train.download import SOURCES, download
from train.tasks import TASKS, load_split

# the paper's nine: the tasks with release files to download
TASK_NAMES = " ".join(t for t in TASKS if t in SOURCES)


def main_train_policy(argv) -> int:
    """`maskpt train-policy supervised|meta ...`: the rest of the line goes to the recipe."""
    kinds = {"supervised": "train.supervised_policy", "meta": "train.meta_policy"}
    if not argv or argv[0] not in kinds:
        ap = argparse.ArgumentParser(
            prog="maskpt train-policy",
            description="Train a learned masking policy. `maskpt train-policy supervised --help` "
            "(sup_v1, span extractor) or `maskpt train-policy meta --help` (meta_v1, Algorithm 1).",
        )
        ap.add_argument("kind", choices=list(kinds))
        ap.parse_args(argv[:1])

    return importlib.import_module(kinds[argv[0]]).main(argv[1:])


def main_data(argv) -> int:
    ap = argparse.ArgumentParser(prog="maskpt data", description="Downstream task data.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    show = sub.add_parser(
        "show",
        help="print a task split as the model gets it (source, target, all gold answers)",
        description="Read a task's release files from a local folder, convert them to seq2seq "
        f"examples and print them. Tasks: {TASK_NAMES}.",
    )
    show.add_argument("task")
    show.add_argument("path", help="folder holding the task's release files")
    show.add_argument("--split", default="test", help="train, dev or test (default test)")
    show.add_argument("--n", type=int, default=5, help="examples to print (default 5)")
    show.add_argument("--json", action="store_true", help="one JSON object per example")
    dl = sub.add_parser(
        "download",
        help="fetch a task's official files into DIR and verify them",
        description="Download a task's official release files (network needed), unpack what "
        "the loader reads into DIR, check every split parses, and record sha256s in "
        "DIR/MANIFEST.json. Without network, put the files in DIR by hand.",
    )
    dl.add_argument(
        "task",
        help=TASK_NAMES + "; or kilt_knowledge_source (35 GB: the "
        "paragraphs zsre and wow policy training reads)",
    )
    dl.add_argument("dir", help="output folder")
    dl.add_argument("--force", action="store_true", help="download again even if present")
    args = ap.parse_args(argv)
    return _data_show(args) if args.cmd == "show" else _data_download(args)


def _data_show(args) -> int:
    examples = load_split(args.task, args.path, args.split)
    for ex in examples[: args.n]:
        if args.json:
            print(json.dumps(dataclasses.asdict(ex), ensure_ascii=False))
        else:
            print(
                f"[{ex.id}]\n  source:  {ex.source}\n  target:  {ex.target}\n  answers: "
                + " | ".join(ex.answers)
                + (f"\n  choices: {' | '.join(ex.choices)}" if ex.choices else "")
            )
    print(f"{args.task} {args.split}: {len(examples)} examples", file=sys.stderr)
    return 0


def _data_download(args) -> int:
    sizes = download(args.task, args.dir, force=args.force)
    print(f"{args.task} in {args.dir}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0


def main_report(argv) -> int:
    from train.report import __doc__ as doc
    from train.report import build, collect, markdown, write

    p = argparse.ArgumentParser(
        prog="maskpt report", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("runs", nargs="+", help="sweep folders or run folders")
    p.add_argument("--out", help="where report.md and report.json go (default: first RUNS)")
    p.add_argument("--alpha", type=float, default=0.1, help="significance level (default 0.1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument(
        "--preface",
        metavar="FILE",
        help="Markdown put above the table in report.md (maskpt study: the study's status)",
    )
    args = p.parse_args(argv)
    if args.preface and not Path(args.preface).is_file():
        p.error(f"--preface {args.preface}: no such file")
    table = build(collect(args.runs), alpha=args.alpha)
    preface = Path(args.preface).read_text() if args.preface else ""
    write(table, Path(args.out or args.runs[0]), preface)
    print(json.dumps(table, indent=2) if args.json else markdown(table))
    return 0

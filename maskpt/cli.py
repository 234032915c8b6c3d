"""`maskpt` command line. Each subcommand is a small function; `maskpt --help`
lists them and `maskpt SUBCOMMAND --help` explains one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maskpt import __version__


def _add_tokenizer(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer for offline use")
    tsub = p.add_subparsers(dest="tokenizer_cmd", required=True)
    t = tsub.add_parser(
        "train",
        help="train a byte-level BPE (<s> <pad> </s> <unk> <mask>) and save it for AutoTokenizer",
        description="Train a byte-level BPE tokenizer with the BART/RoBERTa special tokens on "
        "text (.txt, blank-line separated documents) or JSONL ({'id','text'}) files, and save it "
        "so that AutoTokenizer.from_pretrained(OUT) loads it.",
    )
    t.add_argument("corpus", nargs="+", help="input .txt/.jsonl files")
    t.add_argument("out", help="output folder")
    t.add_argument("--vocab-size", type=int, default=8000, help="vocabulary size (default 8000)")
    t.add_argument("--min-frequency", type=int, default=2, help="min pair frequency (default 2)")
    t.set_defaults(func=cmd_tokenizer_train)


def _add_mask(sub) -> None:
    p = sub.add_parser(
        "mask",
        help="mask text with a policy and show source/target (or --json)",
        description="Segment and mask text with a policy, then print each segment's source "
        "(masks highlighted) and target. The first thing to run to see what a policy does.",
        epilog="examples:\n  maskpt mask --policy ssm_v1 --text 'Ada Lovelace was born in London in 1815.'\n"
        "  maskpt mask --policy orig_v1 --tokenizer ./tok --input wiki.jsonl --show 5\n"
        "  maskpt mask --policy rand_v1 --input wiki.jsonl --json > masked.jsonl\n"
        "  maskpt mask --policy orig_v1 --set mask_ratio=0.4 --text '...'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--policy", required=True, help="registered policy name (see `maskpt policies`)")
    p.add_argument("--tokenizer", default="facebook/bart-base", help="hub name or local folder")
    p.add_argument("--seed", type=int, default=0, help="masking seed (default 0)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="text to mask (repeatable)")
    src.add_argument("--input", help="JSONL file of {'id','title','text'} (or .txt)")
    p.add_argument("--show", type=int, default=10, help="segments to print (default 10)")
    p.add_argument(
        "--json", action="store_true", help="write one JSON object per segment to stdout"
    )
    p.add_argument("--max-length", type=int, default=128, help="tokens per segment (default 128)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a policy config field (repeatable)",
    )
    p.set_defaults(func=cmd_mask)


def _add_policies(sub) -> None:
    p = sub.add_parser("policies", help="list registered masking policies and their config")
    p.set_defaults(func=cmd_policies)


def _add_demo(sub) -> None:
    from maskpt.demo import __doc__ as doc
    from maskpt.demo import config_fields

    p = sub.add_parser(
        "demo",
        help="the main job end to end: synthetic world, every policy, pre-train, fine-tune, table",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config fields (--set KEY=VALUE; also world.people, world.repeats, model.d_model, "
        "...):\n" + config_fields(),
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument(
        "--size",
        choices=["tiny", "default", "large"],
        default="default",
        help="tiny: a few minutes (CI); default: ~33 min on 2 CPU cores; large: GPU or hours",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config field (repeatable)"
    )
    p.set_defaults(func=cmd_demo)


def _add_preprocess(sub) -> None:
    p = sub.add_parser(
        "preprocess",
        help="mask documents on Ray and write Arrow/WebDataset shards + index.json",
        description="Read Wikipedia dumps (.xml/.xml.bz2), JSONL or text; segment, mask with a "
        "policy on a Ray actor pool (embedded local Ray unless --address), and write shards, "
        "index.json last. Reruns resume; a folder made by another run is refused.",
        epilog="examples:\n"
        "  maskpt preprocess --input enwiki-pages-articles.xml.bz2 --policy ssm_v1 --output shards/ssm\n"
        "  maskpt preprocess --input wiki.jsonl --policy orig_v1 --tokenizer ./tok --output out "
        "--format both\n"
        "  maskpt preprocess --config configs/preprocess/wikipedia_ssm.yaml --address auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="YAML file of PreprocessConfig fields")
    p.add_argument("--input", nargs="+", dest="inputs", help="input files")
    p.add_argument("--policy", help="policy name (default orig_v1)")
    p.add_argument(
        "--policy-checkpoint",
        help="learned policies (sup_v1, meta_v1): checkpoint folder from `maskpt train-policy`",
    )
    p.add_argument("--output", help="shard folder")
    p.add_argument("--tokenizer", help="tokenizer name or folder (default facebook/bart-base)")
    p.add_argument("--format", choices=["arrow", "webdataset", "both"], help="default arrow")
    p.add_argument("--seed", type=int)
    p.add_argument("--shard-size", type=int, dest="shard_size", help="examples per shard")
    p.add_argument(
        "--docs-per-unit", type=int, dest="docs_per_unit", help="documents per unit of work"
    )
    p.add_argument("--max-length", type=int, dest="max_length", help="tokens per segment (128)")
    p.add_argument("--workers", type=int, help="worker actors (default: one per CPU)")
    p.add_argument("--address", help="Ray cluster address, e.g. auto (default: embedded local Ray)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. policy_config.on_no_entity=rand",
    )
    p.add_argument(
        "--no-ray",
        action="store_true",
        help="process the units in this process, without Ray (small inputs, debugging)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_preprocess)


def _add_inspect(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="summarise, show or verify a shard folder",
        description="Without options: policy, seed, tokenizer, counts, skipped by reason, mask "
        "ratio and span-length histogram. --show N prints decoded examples; --verify checks "
        "checksums, schema, decodability and counts, exiting 1 and naming the bad shard and row.",
    )
    p.add_argument("folder")
    p.add_argument("--show", type=int, metavar="N", help="print N examples")
    p.add_argument("--id", help="with --show: the example with this id")
    p.add_argument("--verify", action="store_true")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--tokenizer", help="tokenizer for --show (default: the one in index.json)")
    p.set_defaults(func=cmd_inspect)


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="downstream task data: show converted examples")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    show = dsub.add_parser(
        "show",
        help="print a task split as the model gets it (source, target, all gold answers)",
        description="Read a task's release files from a local folder, convert them to seq2seq "
        "examples and print them. Tasks: nq tqa wq ay2 zsre wow ropes wiqa quartz.",
    )
    show.add_argument("task")
    show.add_argument("path", help="folder holding the task's release files")
    show.add_argument("--split", default="test", help="train, dev or test (default test)")
    show.add_argument("--n", type=int, default=5, help="examples to print (default 5)")
    show.add_argument("--json", action="store_true", help="one JSON object per example")
    show.set_defaults(func=cmd_data_show)
    dl = dsub.add_parser(
        "download",
        help="fetch a task's official files into DIR and verify them",
        description="Download a task's official release files (network needed), unpack what "
        "the loader reads into DIR, check every split parses, and record sha256s in "
        "DIR/MANIFEST.json. Without network, put the files in DIR by hand.",
    )
    dl.add_argument("task", help="nq tqa wq ay2 zsre wow ropes wiqa quartz")
    dl.add_argument("dir", help="output folder")
    dl.add_argument("--force", action="store_true", help="download again even if present")
    dl.set_defaults(func=cmd_data_download)


def _add_finetune(sub) -> None:
    sub.add_parser(
        "finetune",
        help="fine-tune a BART checkpoint on one task and evaluate it (train/finetune.py)",
        add_help=False,
    )


def _add_train_policy(sub) -> None:
    p = sub.add_parser(
        "train-policy",
        help="train a learned masking policy: `supervised` (sup_v1) or `meta` (meta_v1)",
        description="maskpt train-policy supervised --help | maskpt train-policy meta --help",
    )
    p.add_argument("kind", choices=["supervised", "meta"])


def _add_sweep(sub) -> None:
    from train.sweep import __doc__ as doc

    p = sub.add_parser(
        "sweep",
        help="the paper's fine-tuning protocol (LR/batch search, seeds) as separate jobs",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  maskpt sweep --checkpoints orig=runs/orig/hf ssm=runs/ssm/hf "
        "--tasks nq wq --data nq=data/nq wq=data/wq --out runs/ft --address auto",
    )
    p.add_argument(
        "--checkpoints",
        nargs="+",
        required=True,
        metavar="[NAME=]PATH",
        help="HF model folders or hub names (row names in the report)",
    )
    p.add_argument("--tasks", nargs="+", required=True, help="task names")
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="TASK=DIR",
        help="task data folders (or one DIR holding a folder per task)",
    )
    p.add_argument("--out", required=True, help="sweep folder (one subfolder per run)")
    p.add_argument("--lrs", nargs="+", type=float, default=[5e-6, 1e-5, 2e-5, 3e-5])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64, 128, 256])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument(
        "--search",
        choices=["staged", "grid"],
        default="staged",
        help="staged: lr, then batch size, then seeds (the paper); grid: everything",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="FinetuneConfig field for every run (repeatable)",
    )
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: run locally")
    p.add_argument("--gpus-per-run", type=float, default=1.0, help="GPUs per Ray task")
    p.add_argument("--retries", type=int, default=1, help="retries of a failed run (default 1)")
    p.set_defaults(func=cmd_sweep)  # fmt: skip


def _add_report(sub) -> None:
    from train.report import __doc__ as doc

    p = sub.add_parser(
        "report",
        help="the paper's results table (mean ± std, paired t-test) from fine-tuning runs",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", help="sweep folders or run folders")
    p.add_argument("--out", help="where report.md and report.json go (default: first RUNS)")
    p.add_argument("--alpha", type=float, default=0.1, help="significance level (default 0.1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.set_defaults(func=cmd_report)


def _add_analyze(sub) -> None:
    from maskpt.analyze import __doc__ as doc

    p = sub.add_parser(
        "analyze",
        help="what policies mask: POS of masked words and mask vs corpus frequency (plots, CSV)",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  maskpt analyze runs/shards/orig runs/shards/ssm --sample 0.01 "
        "--out runs/analysis",
    )
    p.add_argument("folders", nargs="+", metavar="DIR", help="shard folders (one per policy)")
    p.add_argument("--out", required=True, help="folder for pos.png, freq.png, CSV and JSON")
    p.add_argument(
        "--sample", type=float, default=0.01, help="fraction of rows to analyse (default 0.01)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.set_defaults(func=cmd_analyze)


def _add_world(sub) -> None:
    from maskpt.world import __doc__ as doc

    p = sub.add_parser(
        "world",
        help="generate the synthetic closed-book QA benchmark (fictional people, articles, QA)",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="WorldConfig field: people, background_people, repeats, train_fraction, "
        "dev_fraction, seed (repeatable)",
    )
    p.set_defaults(func=cmd_world)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskpt",
        description="Masking policies for intermediate pre-training of BART (Ye et al., 2021).",
    )
    parser.add_argument("--version", action="version", version=f"maskpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_analyze,
        _add_data,
        _add_demo,
        _add_finetune,
        _add_inspect,
        _add_mask,
        _add_policies,
        _add_preprocess,
        _add_report,
        _add_sweep,
        _add_train_policy,
        _add_tokenizer,
        _add_world,
    ):
        add(sub)
    return parser


# Subcommands that are recipes with their own parser (config fields and
# key=value overrides): `maskpt WORDS...` hands the rest of the line to MODULE.main.
RECIPES = {
    ("finetune",): "train.finetune",
    ("train-policy", "supervised"): "train.supervised_policy",
    ("train-policy", "meta"): "train.meta_policy",
}


def main(argv=None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    words = next((w for w in RECIPES if tuple(argv[: len(w)]) == w), None)
    if words is not None:
        recipe = importlib.import_module(RECIPES[words]).main
        command, run = " ".join(words), lambda: recipe(argv[len(words) :])
    else:  # the parser also lists the recipes for --help, and rejects a bad train-policy kind
        args = build_parser().parse_args(argv)
        command, run = args.command, lambda: args.func(args)
    try:
        return run() or 0
    except (ValueError, OSError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"maskpt {command}: error: {msg}", file=sys.stderr)
        return 2


# --- commands ------------------------------------------------------------------


def cmd_tokenizer_train(args) -> int:
    from maskpt.tokenizer import train_tokenizer
    from preprocess.readers import Document, read_any

    out = args.out
    texts = (d.text for f in args.corpus for d in read_any(f) if isinstance(d, Document))
    tok = train_tokenizer(texts, out, vocab_size=args.vocab_size, min_frequency=args.min_frequency)
    print(f"saved a {len(tok)}-token byte-level BPE tokenizer to {out}")
    return 0


def _documents(args):
    from preprocess.readers import Document, read_any

    if args.text is not None:
        return [Document(id=f"text{i}", text=t) for i, t in enumerate(args.text)]
    return read_any(args.input)


def cmd_mask(args) -> int:
    from rich.console import Console

    import policies
    from maskpt.masking import Counts, mask_documents
    from maskpt.show import print_example, to_json
    from maskpt.tokenizer import TokenizerInfo, load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    policy = policies.create(
        args.policy,
        TokenizerInfo.from_tokenizer(tok, args.tokenizer, fingerprint=True),
        overrides=args.set,
    )
    counts = Counts()
    console = Console(stderr=args.json, highlight=False, soft_wrap=True)
    shown = 0
    for ex in mask_documents(_documents(args), tok, policy, args.seed, counts, args.max_length):
        if args.json:
            sys.stdout.write(json.dumps(to_json(tok, ex), ensure_ascii=False) + "\n")
        elif shown < args.show:
            print_example(console, tok, ex)
            shown += 1
    print_counts(console, counts, args.policy)
    return 0


def print_counts(console, counts, title: str) -> None:
    d = counts.as_dict()
    console.print(
        f"[bold]{title}[/]: {d['documents_read']} documents read, {d['documents_written']} written; "
        f"{d['segments_written']}/{d['segments']} segments written, {d['tokens_written']} tokens; "
        f"mask ratio {d['mask_ratio']:.3f}"
    )
    print_skips(console, d)
    for s in counts.examples[:5]:
        if s.detail:
            console.print(f"  [dim]{s.reason}: {s.detail}[/]")


def print_skips(console, counts: dict) -> None:
    """The skipped-by-reason lines of a counts dict (`Counts.as_dict()` or index.json)."""
    for kind in ("skipped_documents", "skipped_segments"):
        if counts[kind]:
            items = ", ".join(f"{k}: {v}" for k, v in sorted(counts[kind].items()))
            console.print(f"  {kind.replace('_', ' ')}: {items}")


def cmd_policies(args) -> int:
    import dataclasses

    import policies

    for name in policies.names():
        cls = policies.get(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        print(f"{name}  {doc}")
        for f in dataclasses.fields(cls.config_cls):
            print(f"    {f.name} = {f.default!r}")
    return 0


def cmd_preprocess(args) -> int:
    from maskpt.config import build_dataclass, read_yaml_mapping
    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess

    base = read_yaml_mapping(args.config) if args.config else {}
    flags = {
        k: getattr(args, k)
        for k in (
            "inputs",
            "policy",
            "output",
            "tokenizer",
            "format",
            "seed",
            "shard_size",
            "docs_per_unit",
            "max_length",
            "workers",
            "address",
        )
    }
    base.update({k: v for k, v in flags.items() if v is not None})
    if args.policy_checkpoint:
        base.setdefault("policy_config", {})["checkpoint"] = args.policy_checkpoint
    cfg = build_dataclass(PreprocessConfig, base, args.set, where=args.config or "preprocess")
    index = run_preprocess(cfg, progress=not args.quiet, use_ray=not args.no_ray)
    c = index["counts"]
    print(
        f"{cfg.output}: {c['segments_written']} segments, {c['tokens_written']} tokens in "
        f"{len(index['shards'])} shards; {c['documents_read']} documents read, "
        f"{c['documents_written']} written, skipped: {c['skipped_documents'] or 'none'}"
    )
    return 0


def cmd_inspect(args) -> int:
    from rich.console import Console

    from preprocess import inspection

    console = Console(highlight=False, soft_wrap=True)
    if args.verify:
        problems = inspection.verify(args.folder)
        if args.json:
            print(json.dumps({"folder": args.folder, "ok": not problems, "problems": problems}))
        else:
            for p in problems:
                console.print(f"[red]FAIL[/] {p}")
            if not problems:
                console.print(
                    f"[green]OK[/] {args.folder}: checksums, schema, rows and counts match"
                )
        return 1 if problems else 0
    if args.show is not None or args.id:
        from maskpt.show import print_example, to_json
        from maskpt.tokenizer import load_tokenizer
        from preprocess.manifest import load_index

        index = load_index(args.folder)
        tok = load_tokenizer(args.tokenizer or index["tokenizer"]["name"])
        rows = inspection.find_rows(args.folder, args.show or 1, args.id)
        if args.id and not rows:
            raise ValueError(f"no example with id {args.id!r} in {args.folder}")
        for row in rows:
            ex = inspection.row_to_masked(
                row, index["policy"]["target_format"], index["policy"]["name"]
            )
            if args.json:
                print(json.dumps(to_json(tok, ex), ensure_ascii=False))
            else:
                print_example(console, tok, ex)
        return 0
    summary = inspection.summarize(args.folder)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    c = summary["counts"]
    pol = summary["policy"]
    console.print(
        f"[bold]{summary['folder']}[/]: {pol['name']} (target {pol['target_format']}), "
        f"seed {summary['seed']}, max_length {summary['max_length']}"
    )
    console.print(f"  policy config: {json.dumps(pol['config'])}")
    t = summary["tokenizer"]
    console.print(f"  tokenizer: {t['name']} (vocab {t['vocab_size']}, sha256 {t['sha256'][:12]})")
    console.print(
        f"  {summary['examples']} examples in {summary['shards']} shards "
        f"({', '.join(summary['formats'])}); {c['tokens_written']} tokens"
    )
    console.print(f"  documents: {c['documents_read']} read, {c['documents_written']} written")
    print_skips(console, c)
    console.print(f"  mask ratio: {summary['mask_ratio']:.3f}")
    hist = summary["span_length_histogram"]
    total = max(1, sum(hist.values()))
    console.print("  masked-span lengths (input tokens):")
    for k, v in list(hist.items())[:20]:
        console.print(f"    {k:>3} {v:>8}  {'#' * max(1, round(40 * v / total)) if v else ''}")
    return 0


def cmd_data_show(args) -> int:
    import dataclasses

    from train.tasks import load_split

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


def cmd_data_download(args) -> int:
    from train.download import download

    sizes = download(args.task, args.dir, force=args.force)
    print(f"{args.task} in {args.dir}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0


def _data_dirs(specs: list[str], tasks: list[str]) -> dict[str, str]:
    if len(specs) == 1 and "=" not in specs[0]:
        return {t: str(Path(specs[0]) / t) for t in tasks}
    out = {}
    for spec in specs:
        task, sep, folder = spec.partition("=")
        if not sep:
            raise ValueError(f"--data {spec!r}: expected TASK=DIR")
        out[task] = folder
    return out


def cmd_sweep(args) -> int:
    from maskpt.config import parse_overrides
    from train.finetune import FinetuneConfig
    from train.sweep import Executor, sweep
    from train.tasks import get_task

    for t in args.tasks:
        get_task(t)
    settings = parse_overrides(args.set)
    known = set(FinetuneConfig.__dataclass_fields__)
    for key in settings:
        if key.split(".")[0] not in known:
            raise ValueError(
                f"--set {key}: not a FinetuneConfig field ({', '.join(sorted(known))})"
            )
    executor = Executor(args.address, args.gpus_per_run, args.retries)
    summary = sweep(
        args.checkpoints, args.tasks, _data_dirs(args.data, args.tasks), Path(args.out),
        args.lrs, args.batch_sizes, args.seeds, args.search, settings, executor,
    )  # fmt: skip
    print(
        f"sweep: {summary['ran']} run(s) executed, {summary['skipped_finished']} already "
        f"finished, {len(summary['failed'])} failed; summary in {args.out}/sweep.json"
    )
    for f in summary["failed"]:
        print(f"  failed: {f} (see {f}/log.txt)", file=sys.stderr)
    return 1 if summary["failed"] else 0


def cmd_report(args) -> int:
    from train.report import build, collect, markdown, write

    table = build(collect(args.runs), alpha=args.alpha)
    write(table, Path(args.out or args.runs[0]))
    print(json.dumps(table, indent=2) if args.json else markdown(table))
    return 0


def cmd_analyze(args) -> int:
    from maskpt.analyze import run_analysis, summary_lines

    result = run_analysis(args.folders, args.out, sample=args.sample, seed=args.seed)
    print("\n".join(summary_lines(result)))
    print(f"wrote pos.png, freq.png, pos.csv, freq-*.csv and analysis.json to {args.out}")
    return 0


def cmd_world(args) -> int:
    from maskpt.config import load_config
    from maskpt.world import WorldConfig, generate

    cfg = load_config(WorldConfig, None, args.set)
    counts = generate(cfg, args.out)
    print(f"wrote the synthetic world to {args.out}: " + json.dumps(counts))
    return 0


def cmd_demo(args) -> int:
    from maskpt.demo import demo_config, run_demo

    run_demo(demo_config(args.size, args.set), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
    p = sub.add_parser(
        "demo",
        help="the main job on the embedded default (CPU, bundled text)",
        description="Train a tokenizer on the bundled paragraphs, mask them with every "
        "heuristic policy, print examples and statistics, and save a summary.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", type=int, default=2, help="examples per policy (default 2)")
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskpt",
        description="Masking policies for intermediate pre-training of BART (Ye et al., 2021).",
    )
    parser.add_argument("--version", action="version", version=f"maskpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_demo, _add_mask, _add_policies, _add_tokenizer):
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, OSError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"maskpt {args.command}: error: {msg}", file=sys.stderr)
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
        args.policy, TokenizerInfo.from_tokenizer(tok, args.tokenizer), overrides=args.set
    )
    counts = Counts()
    console = Console(stderr=args.json, highlight=False)
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
    for kind in ("skipped_documents", "skipped_segments"):
        if d[kind]:
            items = ", ".join(f"{k}: {v}" for k, v in d[kind].items())
            console.print(f"  {kind.replace('_', ' ')}: {items}")
    for s in counts.examples[:5]:
        if s.detail:
            console.print(f"  [dim]{s.reason}: {s.detail}[/]")


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


def cmd_demo(args) -> int:
    from maskpt.demo import run_demo

    run_demo(Path(args.out), seed=args.seed, show=args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())

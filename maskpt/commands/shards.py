"""`maskpt preprocess` and `maskpt inspect`: write shard folders and look into them."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.errors import UserError
from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer
from maskpt.show import print_example, print_skips, to_json
from preprocess.index import load_index, tokenizer_source

PREPROCESS_DOC = """Read Wikipedia dumps (.xml/.xml.bz2), JSONL or text; segment, mask with a
policy on a Ray actor pool (embedded local Ray unless --address), and write
shards, index.json last. Reruns resume; a folder made by another run is refused."""

PREPROCESS_EXAMPLES = """examples:
  maskpt preprocess --input enwiki-pages-articles.xml.bz2 --policy ssm_v1 --output shards/ssm
  maskpt preprocess --input wiki.jsonl --policy orig_v1 --tokenizer ./tok --output out --format both
  maskpt preprocess --config configs/preprocess/wikipedia_ssm.yaml --address auto
  maskpt preprocess --input a.jsonl --policy sup_v1 --policy-checkpoint pol/sup --output out \\
      policy_config.batch_size=1024
"""


def preprocess_args():
    from preprocess.config import PreprocessConfig

    args = ConfigArgs(
        PreprocessConfig,
        "maskpt preprocess",
        PREPROCESS_DOC,
        PREPROCESS_EXAMPLES,
        aliases={"--input": "inputs", "--policy-checkpoint": "policy_config.checkpoint"},
    )
    args.parser.add_argument(
        "--no-ray",
        action="store_true",
        help="process the units in this process, without Ray "
        "(small inputs, debugging); the same output",
    )
    args.parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return args


def main_preprocess(argv) -> int:
    from preprocess.pipeline import run_preprocess

    cfg, ns = preprocess_args().parse(argv)
    if str(cfg.output).startswith("memory://"):  # fsspec's in-process store: gone at exit
        print(
            f"maskpt preprocess: warning: --output {cfg.output}: memory:// lives in this "
            "process only; the shards are gone when it ends unless this process uses them "
            "(give a path or a persistent URL such as s3:// to keep them)",
            file=sys.stderr,
        )
    if cfg.policy == "ssm_v1" and not ns.quiet:
        _say_spacy_model(cfg.policy_config.get("spacy_model"))
    index = run_preprocess(cfg, progress=not ns.quiet, use_ray=not ns.no_ray)
    c = index.counts
    per_format = ", ".join(f"{len(index.shards_of(f))} {f}" for f in index.formats)
    skipped = {**c.skipped_documents, **{f"segments:{k}": v for k, v in c.skipped_segments.items()}}
    print(
        f"{cfg.output}: {c.segments_written} segments, {c.tokens_written} tokens in "
        f"{len(index.shards_of())} shards ({per_format}); {c.documents_read} documents read, "
        f"{c.documents_written} written, skipped: {skipped or 'none'}"
    )
    return 0


def _say_spacy_model(model: str | None) -> None:
    """Which spaCy package NER loads on this machine (the workers' nodes should match):
    the official model or its PyPI copy."""
    from policies.ssm import SPACY_MODEL, SPACY_MODEL_FALLBACK, spacy_package

    model = model or SPACY_MODEL
    found = spacy_package(model)
    if found == SPACY_MODEL_FALLBACK:
        print(
            f"ssm_v1: spaCy {model} from its PyPI copy {found} (the same model; install "
            f"the official one with `python -m spacy download {model}` to use it)",
            file=sys.stderr,
        )
    elif found:
        print(f"ssm_v1: spaCy {found}", file=sys.stderr)


def _inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="maskpt inspect",
        description="Without options: policy, seed, tokenizer, counts, skipped by reason, mask "
        "ratio and span-length histogram. --show N prints decoded examples; --verify checks "
        "checksums, schema, decodability and counts, exiting 1 and naming the bad shard and row.",
    )
    p.add_argument("folder")
    p.add_argument("--show", type=int, metavar="N", help="print N examples")
    p.add_argument("--id", help="with --show: the example with this id")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check every shard's sha256 and schema, decode every row, compare the "
        "counts with index.json; exit 1 naming the bad shard and row",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--tokenizer",
        help="tokenizer for --show (default: the copy stored with the shards, in FOLDER/tokenizer)",
    )
    p.add_argument(
        "--epoch",
        type=int,
        default=None,
        metavar="E",
        help="with --show: the masks the trainer draws in epoch E (default: the "
        "stored ones, epoch 0)",
    )
    p.add_argument(
        "--policy", default=None, help="with --epoch: draw with this policy instead of the folder's"
    )
    return p


def main_inspect(argv) -> int:
    parser = _inspect_parser()
    args = parser.parse_args(argv)
    console = Console(highlight=False, soft_wrap=True, emoji=False)
    if (args.epoch is not None or args.policy) and args.show is None and not args.id:
        parser.error(
            "--epoch and --policy apply to --show N / --id (the summary describes the stored "
            "epoch-0 masks); for epoch E's mask statistics: maskpt analyze FOLDER --epoch E"
        )
    if args.verify:
        return _verify(args, console)
    if args.show is not None or args.id:
        return _show(args, console)
    return _summary(args, console)


def _verify(args, console) -> int:
    from preprocess import inspection

    problems = inspection.verify(args.folder)
    if args.json:
        print(json.dumps({"folder": args.folder, "ok": not problems, "problems": problems}))
    else:
        for p in problems:
            console.print(f"[red]FAIL[/] {p}", markup=True, emoji=False)
        if not problems:
            console.print(f"[green]OK[/] {args.folder}: checksums, schema, rows and counts match")
    return 1 if problems else 0


def _show(args, console) -> int:
    from preprocess import inspection
    from preprocess.remask import Remasker
    from preprocess.shards import masked_of

    index = load_index(args.folder)
    tok = load_tokenizer(args.tokenizer or tokenizer_source(index))
    rows = inspection.find_rows(args.folder, args.show or 1, args.id)
    if args.id and not rows:
        raise UserError(f"no example with id {args.id!r} in {args.folder}")
    remasker = None
    if args.epoch is not None or args.policy:
        remasker = Remasker(index, TokenizerInfo.from_tokenizer(tok), args.policy)
    for row in rows:
        policy = index.policy
        if remasker is not None:
            drawn = remasker.policy_for(row["id"], args.epoch or 0)
            row = remasker.draw(row, args.epoch or 0)
            policy = type(policy)(drawn.name, {}, drawn.target_format)
        ex = masked_of(row, policy.target_format, policy.name)
        if args.json:
            print(json.dumps(to_json(tok, ex), ensure_ascii=False))
        else:
            print_example(console, tok, ex)
    return 0


def _summary(args, console) -> int:
    from preprocess import inspection

    summary = inspection.summarize(args.folder)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    c, pol, t = summary["counts"], summary["policy"], summary["tokenizer"]
    console.print(
        f"[bold]{summary['folder']}[/]: {pol['name']} (target {pol['target_format']}), "
        f"seed {summary['seed']}, max_length {summary['max_length']}"
    )
    console.print(f"  policy config: {json.dumps(pol['config'])}", markup=False)
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

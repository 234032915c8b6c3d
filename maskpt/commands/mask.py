"""`maskpt mask`, `maskpt policies` and `maskpt tokenizer train`: see what a
policy does to text, list the policies, train an offline tokenizer."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from tqdm import tqdm

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import field_docs
from maskpt.core.errors import InputNotFound
from maskpt.core.records import Document
from maskpt.core.storage import input_path, metered, missing_input
from maskpt.core.tokenizer import DEFAULT_TOKENIZER, TokenizerInfo, load_tokenizer, train_tokenizer
from maskpt.show import print_counts, print_example, to_json
from preprocess.counts import Counts
from preprocess.readers import read_any

MASK_EXAMPLES = """examples:
  maskpt mask --policy ssm_v1 --text 'Ada Lovelace was born in London in 1815.'
  maskpt mask --policy orig_v1 --tokenizer ./tok --input wiki.jsonl --show 5
  maskpt mask --policy rand_v1 --input wiki.jsonl --json > masked.jsonl
  maskpt mask --policy orig_v1 policy_config.mask_ratio=0.4 --text '...'
"""


@dataclass(frozen=True)
class MaskConfig:
    policy: str = ""
    """Registered policy name (see `maskpt policies`)."""
    policy_config: dict[str, Any] = field(default_factory=dict)
    """Overrides of the policy's config fields, e.g. policy_config.mask_ratio=0.4."""
    tokenizer: str = DEFAULT_TOKENIZER
    """Tokenizer: hub name or local folder (`maskpt tokenizer train` makes one offline)."""
    seed: int = 0
    """Masking seed."""
    epoch: int = 0
    """Which epoch's draw to show (the trainer draws every epoch anew; preprocessing writes 0)."""
    text: tuple[str, ...] = ()
    """Texts to mask, one document each (or use input)."""
    input: str = ""
    """A JSONL file of {"id","title","text"} or a .txt of blank-line separated documents."""
    show: int = 10
    """Segments to print."""
    json: bool = False
    """Write one JSON object per segment to stdout instead (the summary goes to stderr)."""
    max_length: int = 128
    """Tokens per segment, <s> and </s> included."""

    def __post_init__(self) -> None:
        if not self.policy:
            raise ValueError("policy: give a policy name (see `maskpt policies`)")
        if bool(self.text) == bool(self.input):
            raise ValueError("give either --text (repeatable) or --input FILE")
        if self.show < 0 or self.max_length < 3:
            raise ValueError("show must be >= 0 and max_length >= 3")


def _documents(cfg: MaskConfig):
    if cfg.text:
        return [Document(id=f"text{i}", text=t) for i, t in enumerate(cfg.text)]
    return read_any(cfg.input)


def mask_args():
    return ConfigArgs(
        MaskConfig,
        "maskpt mask",
        "Segment and mask text with a policy, then print each segment's source "
        "(masks highlighted) and target. The first thing to run to see what a "
        "policy does.",
        MASK_EXAMPLES,
    )


def main_mask(argv) -> int:
    import policies
    from preprocess.masking import mask_documents

    cfg, _ = mask_args().parse(argv)
    tok = load_tokenizer(cfg.tokenizer)
    info = TokenizerInfo.from_tokenizer(tok, cfg.tokenizer, fingerprint=True)
    policy = policies.create(cfg.policy, info, cfg.policy_config)
    counts = Counts()
    console = Console(stderr=cfg.json, highlight=False, soft_wrap=True, emoji=False)
    shown = 0
    masked = mask_documents(
        _documents(cfg), tok, policy, cfg.seed, counts, cfg.max_length, epoch=cfg.epoch
    )
    for ex, _ in masked:
        if cfg.json:
            sys.stdout.write(json.dumps(to_json(tok, ex), ensure_ascii=False) + "\n")
        elif shown < cfg.show:
            print_example(console, tok, ex)
            shown += 1
    print_counts(console, counts, cfg.policy)
    return 0


def main_policies(argv) -> int:
    import policies

    argparse.ArgumentParser(
        prog="maskpt policies",
        description="List the registered masking policies and their config fields with defaults.",
    ).parse_args(argv)
    for name in policies.names():
        cls = policies.get(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        print(f"{name}  {doc}")
        docs = field_docs(cls.config_cls)
        for f in dataclasses.fields(cls.config_cls):
            print(
                f"    {f.name} = {f.default!r}" + (f"  # {docs[f.name]}" if f.name in docs else "")
            )
    return 0


def main_tokenizer(argv) -> int:
    ap = argparse.ArgumentParser(
        prog="maskpt tokenizer", description="Train a tokenizer for offline use."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser(
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
    args = ap.parse_args(argv)
    paths = [input_path(f) for f in args.corpus]
    for p in paths:
        if not p.exists():
            raise InputNotFound(missing_input(p))
    texts = (d.text for p in paths for d in read_any(p) if isinstance(d, Document))
    # reading (and cleaning a dump) is the long part: a bar in bytes against the files' sizes
    with (
        tqdm(
            desc="reading",
            total=sum(p.stat().st_size for p in paths),
            unit="B",
            unit_scale=True,
            dynamic_ncols=True,
        ) as bar,
        metered(bar.update),
    ):
        tok = train_tokenizer(
            texts,
            args.out,
            vocab_size=args.vocab_size,
            min_frequency=args.min_frequency,
            progress=True,
        )
    print(f"saved a {len(tok)}-token byte-level BPE tokenizer to {args.out}")
    return 0

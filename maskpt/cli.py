"""`maskpt` command line: `maskpt COMMAND [args]`; `COMMANDS` names the function that runs each.

Every job (preprocess, pretrain, finetune, train-policy, sweep, demo,
world, mask) reads one config dataclass from `--config FILE`, a flag per
field and `KEY=VALUE` overrides anywhere on the line (`maskpt.core.cli_args`);
`maskpt COMMAND --help` lists its fields with their docstrings. The tools
(inspect, analyze, report, data, policies, tokenizer) take plain options.

Bad input (a missing file, a bad config value, a folder of another run) is a
one-line `maskpt COMMAND: error: ...` and exit status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

from maskpt import __version__
from maskpt.core.errors import exit_on_user_error

# name -> ("module:function" that runs it with the rest of the line, one-line help)
# fmt: off
COMMANDS = {
    "mask":         ("maskpt.commands.mask:main_mask",
                     "mask text with a policy and show source/target (or --json)"),
    "policies":     ("maskpt.commands.mask:main_policies",
                     "list registered masking policies and their config"),
    "tokenizer":    ("maskpt.commands.mask:main_tokenizer",
                     "train a byte-level BPE tokenizer for offline use"),
    "preprocess":   ("maskpt.commands.shards:main_preprocess",
                     "mask documents on Ray and write Arrow/WebDataset shards + index.json"),
    "inspect":      ("maskpt.commands.shards:main_inspect",
                     "summarise, show or verify a shard folder"),
    "analyze":      ("maskpt.analyze:main",
                     "what policies mask: POS of masked words, mask vs corpus frequency (plots, CSV)"),
    "pretrain":     ("train.pretrain:main",
                     "intermediate pre-training with DeepSpeed ZeRO (train/pretrain.py)"),
    "export":       ("train.export:main",
                     "a saved pre-training checkpoint as a Hugging Face model folder"),
    "train-policy": ("maskpt.commands.tasks:main_train_policy",
                     "train a learned masking policy: `supervised` (sup_v1) or `meta` (meta_v1)"),
    "finetune":     ("train.finetune:main",
                     "fine-tune a BART checkpoint on one task and evaluate it (Seq2SeqTrainer)"),
    "sweep":        ("train.sweep:main",
                     "the paper's fine-tuning protocol (LR/batch search, seeds) as jobs"),
    "report":       ("maskpt.commands.tasks:main_report",
                     "the paper's results table (mean ± std, paired t-test) from fine-tuning runs"),
    "data":         ("maskpt.commands.tasks:main_data",
                     "downstream task data: download, show converted examples"),
    "world":        ("maskpt.world:main",
                     "generate the synthetic closed-book QA benchmark"),
    "study":        ("maskpt.commands.study:main",
                     "the paper's whole study as one resumable command (on a Ray cluster)"),
    "demo":         ("maskpt.demo:main",
                     "the main job end to end: synthetic world, every policy, pre-train, fine-tune, table"),
}
# fmt: on


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: maskpt [--version] COMMAND [args]",
        "",
        "Masking policies for intermediate pre-training of BART (Ye et al., 2021).",
        "",
        "commands:",
        *(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()),
        "",
        "`maskpt COMMAND --help` explains one.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"maskpt {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write(usage())
        print(f"maskpt: error: unknown command {name!r}", file=sys.stderr)
        return 2
    module, function = COMMANDS[name][0].split(":")
    run = getattr(importlib.import_module(module), function)
    return exit_on_user_error(f"maskpt {name}", lambda: run(rest))


if __name__ == "__main__":
    sys.exit(main())

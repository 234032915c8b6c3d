"""`maskpt demo`: the main job end to end, on a synthetic closed-book QA world.

Stages (each skipped on a rerun when its output is complete, so an
interrupted demo resumes where it stopped):

1. generate the world (`maskpt/world.py`): fictional people, articles, QA;
2. train a byte-level BPE tokenizer on its two corpora;
3. general pre-training: a tiny BART from scratch on the background people's
   articles with `orig_v1` (BART's own objective), standing in for the
   generally pre-trained `facebook/bart-base` the paper starts from;
4. train the learned policies on the QA train split (`sup_v1`, `meta_v1`),
   and again on the questions about the `transfer` attributes only, each
   with `policy_seeds` seeds;
5. preprocess the world's corpus with every row's policy on a local Ray;
6. intermediate pre-training from the general model, `pretrain_seeds` runs
   per row (seed k: data order and per-epoch masks), each with
   `train/pretrain.py` (DeepSpeed ZeRO-1 on CPU);
7. fine-tune every model (and the general one: "no intermediate
   pre-training") on the QA train split, `seeds` fine-tuning seeds per
   pre-trained model; exact match on held-out people whose facts are only in
   the pre-training corpus;
8. the paper's Table 1 layout (`results.md`, `results.json`: mean ± std over
   every (pre-training, fine-tuning) run, EM per attribute, and a transfer
   column: the questions about the attributes the transfer rows' policies
   never saw) and the mask analysis plots (`analysis/`).

Stage layout under OUT: `maskpt/demo_stages.py`.

Everything lands in OUT (default runs/demo); `demo.json` holds the config,
and a rerun with another config into the same OUT is refused.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import ConfigError, to_dict
from maskpt.core.io import claim_spec
from maskpt.demo_results import analysis, results
from maskpt.demo_stages import LEARNED, TRANSFER, Demo, policy_of
from maskpt.world import ATTRIBUTES, WorldConfig
from train.distributed import name_cpu_accelerator

POLICIES = ("orig_v1", "rand_v1", "ssm_v1", "sup_v1", "meta_v1")
NONE_ROW = "none"


def _tiny_bart() -> dict:
    return {
        "d_model": 128,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 512,
        "decoder_ffn_dim": 512,
        "max_position_embeddings": 80,
        "dropout": 0.0,
        "attention_dropout": 0.0,
    }


@dataclass(frozen=True)
class DemoConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    """The synthetic world (people, repeats, splits, seed)."""
    policies: tuple[str, ...] = POLICIES
    """Policies for intermediate pre-training, one row each."""
    seed: int = 0
    """Seed for masking, model initialisation and data order."""
    pretrain_seeds: int = 3
    """Intermediate pre-training runs per row (seeds seed..seed+N-1)."""
    policy_seeds: int = 2
    """Training seeds per learned policy (seeds seed..seed+N-1): pre-training run k of a learned
    row uses the policy of seed k mod N, so a row's ± covers policy training too."""
    seeds: int = 1
    """Fine-tuning seeds per pre-trained model; a row's ± is over all its runs."""
    transfer: tuple[str, ...] = ("birth_year", "birthplace")
    """Attributes whose questions the transfer rows' learned policies train on; their
    column is the other attributes' questions (empty: no transfer rows)."""
    vocab_size: int = 2000
    """Tokenizer vocabulary."""
    model: dict[str, Any] = field(default_factory=_tiny_bart)
    """BartConfig fields of the model trained from scratch (over the tiny default's)."""
    max_length: int = 64
    """Segment length in tokens (an article is one segment)."""
    general_steps: int = 1000
    """General pre-training steps (orig_v1 on the background people)."""
    steps: int = 800
    """Intermediate pre-training steps per policy."""
    batch: int = 64
    """Pre-training batch (sequences)."""
    lr: float = 5e-4
    """Pre-training peak learning rate (AdamW, linear warm-up and decay)."""
    warmup: int = 100
    """Pre-training warm-up steps."""
    remask: Literal["per_epoch", "fixed"] = "per_epoch"
    """Pre-training masks: per_epoch (drawn anew each epoch, as fairseq does) or fixed
    (every epoch trains on the shards' stored epoch-0 masks)."""
    policy_steps: int = 300
    """Training steps of the supervised policy."""
    meta_steps: int = 600
    """Meta steps of the meta-learned policy (batch 8; every other setting the trainer's
    default, as `bench/meta_signal.py` measures it)."""
    ft_steps: int = 200
    """Fine-tuning steps."""
    ft_lr: float = 3e-4
    """Fine-tuning learning rate."""
    ft_batch: int = 32
    """Fine-tuning batch."""
    analysis_sample: float = 1.0
    """Share of each policy's shards that `analyze` reads."""

    def __post_init__(self):
        object.__setattr__(self, "model", {**_tiny_bart(), **self.model})
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown or not self.policies:
            raise ConfigError(f"policies: {unknown or '[]'} not among {', '.join(POLICIES)}")
        for key in (
            "seeds",
            "pretrain_seeds",
            "policy_seeds",
            "general_steps",
            "steps",
            "batch",
            "ft_steps",
            "ft_batch",
            "policy_steps",
            "meta_steps",
            "vocab_size",
            "max_length",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")

        bad = [a for a in self.transfer if a not in ATTRIBUTES]
        if bad or len(set(self.transfer)) == len(ATTRIBUTES):
            raise ConfigError(
                f"transfer: some (not all) of {', '.join(ATTRIBUTES)}, got {list(self.transfer)}"
            )
        if self.batch % 2:
            raise ConfigError(f"batch must be even (two micro-batches), got {self.batch}")


SIZES: dict[str, list[str]] = {
    "tiny": [  # CI: a few minutes; the numbers mean nothing
        "world.people=16",
        "world.background_people=16",
        "world.repeats=2",
        "pretrain_seeds=2",
        "general_steps=30",
        "steps=20",
        "batch=16",
        "warmup=5",
        "policy_steps=10",
        "meta_steps=10",
        "ft_steps=20",
        "ft_batch=16",
        "vocab_size=600",
    ],
    "quick": [  # about 8 min on 2 CPU cores: none vs ssm only, the paper's first finding
        "policies=[ssm_v1]",
        "transfer=[]",
        "general_steps=600",
        "steps=400",
    ],
    "default": [],  # about 2 h on 2 CPU cores (RESULTS.md)
    "large": [  # a GPU or a few hours of CPU: more people, a bigger model, longer runs
        "world.people=400",
        "world.background_people=400",
        "world.repeats=12",
        "pretrain_seeds=5",
        "general_steps=6000",
        "steps=6000",
        "ft_steps=600",
        "vocab_size=4000",
        "model.d_model=256",
        "model.encoder_ffn_dim=1024",
        "model.decoder_ffn_dim=1024",
        "model.encoder_layers=4",
        "model.decoder_layers=4",
    ],
}


def _claim(out: Path, cfg: DemoConfig) -> None:
    """Record the config in OUT/demo.json; refuse an OUT made with another one."""

    claim_spec(out / "demo.json", to_dict(cfg), f"{out} holds a demo with another config")


def run_demo(cfg: DemoConfig, out: Path) -> dict:
    """All stages; returns the results table (also in OUT/results.json)."""

    name_cpu_accelerator()  # the in-process fine-tuning imports DeepSpeed (via accelerate)
    console = Console(highlight=False, emoji=False)
    out = Path(out)
    _claim(out, cfg)
    d = Demo(cfg, out, console)
    console.rule(f"[bold]maskpt demo -> {out}")
    d.make_world()
    d.make_tokenizer()

    from preprocess.pipeline import ray_session

    d.stage("general pre-training (orig_v1 on the background people)")
    with ray_session("local", num_cpus=2):  # its own local Ray, whatever else runs here
        d.preprocess("orig_v1", d.world / "background.jsonl", out / "shards" / "general")
    base = d.pretrain("general", out / "shards" / "general", "", cfg.general_steps)

    rows = list(cfg.policies)
    if cfg.transfer:
        rows += [p + TRANSFER for p in cfg.policies if p in LEARNED]
    d.stage(
        f"learned policies, trained on the QA train split (transfer: some attributes), "
        f"{cfg.policy_seeds} seeds each"
    )
    checkpoints = {
        (r, j): d.train_policy(r, base, j)
        for r in rows
        if policy_of(r) in LEARNED
        for j in range(cfg.policy_seeds)
    }
    if not checkpoints:
        console.print("none asked for")

    def policy_seed(row: str, run: int) -> int:
        return run % cfg.policy_seeds if policy_of(row) in LEARNED else 0

    d.stage("preprocess the world's corpus with every row's policy (local Ray)")
    with ray_session("local", num_cpus=2):
        for r in rows:
            for j in sorted({policy_seed(r, k) for k in range(cfg.pretrain_seeds)}):
                d.preprocess(
                    policy_of(r),
                    d.world / "corpus.jsonl",
                    d.shards(r, j),
                    str(checkpoints.get((r, j), "")),
                )

    d.stage(f"intermediate pre-training, {cfg.pretrain_seeds} runs per row (train/pretrain.py)")
    models = {NONE_ROW: [base] * cfg.pretrain_seeds}
    for r in rows:
        models[r] = [
            d.pretrain(f"{r}/seed{k}", d.shards(r, policy_seed(r, k)), str(base), cfg.steps, k)
            for k in range(cfg.pretrain_seeds)
        ]

    runs = cfg.pretrain_seeds * cfg.seeds
    d.stage(f"fine-tune and evaluate ({runs} runs per row)")
    for row, per_seed in models.items():
        for run_no in range(runs):
            d.finetune(row, per_seed[run_no // cfg.seeds], run_no)

    d.stage("results table and mask analysis")
    plots = analysis(out, cfg, rows, console)
    return results(out, [NONE_ROW, *rows], plots, console)


DEMO_EXAMPLES = """examples:
  maskpt demo --size quick --out runs/demo-quick   # none vs ssm in about 8 min (2 CPU cores)
  maskpt demo --size tiny --out runs/demo-tiny     # every stage in a few minutes (CI)
  maskpt demo steps=2000 world.people=200          # any DemoConfig field, anywhere on the line
"""


def config_args():
    args = ConfigArgs(DemoConfig, "maskpt demo", __doc__, DEMO_EXAMPLES)
    args.parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    args.parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="default",
        help="tiny: a few minutes, a table near zero (CI); quick: about 8 min on 2 CPU cores, "
        "no intermediate pre-training vs ssm only (RESULTS.md); default: about 2 h on 2 CPU "
        "cores, every policy; large: GPU or hours",
    )
    args.parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete OUT and start over (a rerun otherwise resumes, and "
        "a finished demo only prints its table again)",
    )
    return args


def main(argv=None) -> int:
    cfg, ns = config_args().parse(argv, presets=lambda ns: SIZES[ns.size])
    out = Path(ns.out)
    if ns.overwrite and out.exists():
        shutil.rmtree(out)
    run_demo(cfg, out)
    if ns.size == "tiny":
        print(
            "note: --size tiny checks that every stage runs; its models are far too small and "
            "short-trained to answer, so a table near zero is expected. --size quick shows "
            "ssm above no intermediate pre-training in about 8 min on 2 cores; the default "
            "size gives the full table in RESULTS.md."
        )
    return 0

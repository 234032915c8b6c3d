"""`maskpt demo`: the main job end to end, on a synthetic closed-book QA world.

Stages (each skipped on a rerun when its output is complete, so an
interrupted demo resumes where it stopped):

1. generate the world (`maskpt/world.py`): fictional people, articles, QA;
2. train a byte-level BPE tokenizer on its two corpora;
3. general pre-training: a tiny BART from scratch on the background people's
   articles with `orig_v1` (BART's own objective), standing in for the
   generally pre-trained `facebook/bart-base` the paper starts from;
4. train the learned policies on the QA train split (`sup_v1`, `meta_v1`);
5. preprocess the world's corpus with every policy on an embedded local Ray;
6. intermediate pre-training from the general model, one run per policy,
   each with `train/pretrain.py` (DeepSpeed ZeRO-1 on CPU);
7. fine-tune every model (and the general one: "no intermediate
   pre-training") on the QA train split over several seeds; exact match on
   held-out people whose facts are only in the pre-training corpus;
8. the paper's Table 1 layout (`results.md`, `results.json`, with EM per
   attribute) and the mask analysis plots (`analysis/`).

Everything lands in OUT (default runs/demo); `demo.json` holds the config,
and a rerun with another config into the same OUT is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from maskpt.core.config import ConfigError
from maskpt.world import WorldConfig

POLICIES = ("orig_v1", "rand_v1", "ssm_v1", "sup_v1", "meta_v1")
LEARNED = {"sup_v1": "sup", "meta_v1": "meta"}
NONE_ROW = "none"


def _tiny_bart() -> dict:
    return {"d_model": 128, "encoder_layers": 2, "decoder_layers": 2,
            "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 512,
            "decoder_ffn_dim": 512, "max_position_embeddings": 80, "dropout": 0.0,
            "attention_dropout": 0.0}  # fmt: skip


@dataclass(frozen=True)
class DemoConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    """The synthetic world (people, repeats, splits, seed)."""
    policies: tuple[str, ...] = POLICIES
    """Policies for intermediate pre-training, one row each."""
    seed: int = 0
    """Seed for masking, model initialisation and data order."""
    seeds: int = 3
    """Fine-tuning seeds per row (mean ± std over them)."""
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
    """Training steps of each learned policy."""
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
        for key in ("seeds", "general_steps", "steps", "batch", "ft_steps", "ft_batch",
                    "policy_steps", "vocab_size", "max_length"):  # fmt: skip
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.batch % 2:
            raise ConfigError(f"batch must be even (two micro-batches), got {self.batch}")


SIZES: dict[str, list[str]] = {
    "tiny": [  # CI: a few minutes; the numbers mean nothing
        "world.people=16", "world.background_people=16", "world.repeats=2", "seeds=2",
        "general_steps=30", "steps=20", "batch=16", "warmup=5", "policy_steps=10",
        "ft_steps=20", "ft_batch=16", "vocab_size=600",
    ],
    "default": [],  # 33 minutes on 2 CPU cores (RESULTS.md)
    "large": [  # a GPU or a few hours of CPU: more people, a bigger model, longer runs
        "world.people=400", "world.background_people=400", "world.repeats=12", "seeds=5",
        "general_steps=6000", "steps=6000", "ft_steps=600", "vocab_size=4000",
        "model.d_model=256", "model.encoder_ffn_dim=1024", "model.decoder_ffn_dim=1024",
        "model.encoder_layers=4", "model.decoder_layers=4",
    ],
}  # fmt: skip


def demo_config(size: str = "default", overrides=()) -> DemoConfig:
    from maskpt.core.config import load_config

    if size not in SIZES:
        raise ConfigError(f"--size {size!r}: one of {', '.join(SIZES)}")
    return load_config(DemoConfig, None, [*SIZES[size], *overrides])


def _claim(out: Path, cfg: DemoConfig) -> None:
    """Record the config in OUT/demo.json; refuse an OUT made with another one."""
    from maskpt.core.config import to_dict
    from maskpt.core.io import claim_spec

    claim_spec(out / "demo.json", to_dict(cfg), f"{out} holds a demo with another config")


class Demo:
    """The stages, sharing the output folder, the config and the console."""

    def __init__(self, cfg: DemoConfig, out: Path, console):
        self.cfg, self.out, self.console = cfg, out, console
        self.world = out / "world"
        self.tokenizer = out / "tokenizer"
        self.stage_no = 0

    def stage(self, title: str) -> None:
        self.stage_no += 1
        self.console.rule(f"[bold]{self.stage_no}/8 {title}")

    def make_world(self) -> None:
        from maskpt.world import generate

        self.stage("synthetic world")
        if (self.world / "world.json").exists():
            counts = json.loads((self.world / "world.json").read_text())["counts"]
            self.console.print(f"exists: {self.world}")
        else:
            counts = generate(self.cfg.world, self.world)
        self.console.print(
            f"{counts['corpus_docs']} articles about the people asked about, "
            f"{counts['background_docs']} about background people; QA train/dev/test "
            f"{counts['qa_train']}/{counts['qa_dev']}/{counts['qa_test']}"
        )

    def make_tokenizer(self) -> None:
        import shutil

        from maskpt.core.tokenizer import train_tokenizer

        self.stage("tokenizer")
        if (self.tokenizer / "tokenizer.json").exists():
            self.console.print(f"exists: {self.tokenizer}")
            return
        texts = [
            json.loads(line)["text"]
            for name in ("corpus.jsonl", "background.jsonl")
            for line in (self.world / name).read_text(encoding="utf-8").splitlines()
        ]
        tmp = self.out / ".tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tok = train_tokenizer(texts, tmp, vocab_size=self.cfg.vocab_size, min_frequency=1)
        tmp.rename(self.tokenizer)
        self.console.print(f"a {len(tok)}-token byte-level BPE -> {self.tokenizer}")

    def preprocess(self, policy: str, corpus: Path, folder: Path, checkpoint: str = "") -> dict:
        from preprocess.config import PreprocessConfig
        from preprocess.inspection import verify
        from preprocess.pipeline import run_preprocess

        policy_config = {"checkpoint": checkpoint} if checkpoint else {}
        if policy == "sup_v1":  # one of its top 5 spans: top1 masks the same attribute every time
            policy_config["mode"] = "sample"
        cfg = PreprocessConfig(
            inputs=(str(corpus),), output=str(folder), policy=policy,
            policy_config=policy_config,
            tokenizer=str(self.tokenizer), seed=self.cfg.seed, max_length=self.cfg.max_length,
            format="arrow", docs_per_unit=200, shard_size=5000,
        )  # fmt: skip
        index = run_preprocess(cfg, progress=True)
        problems = verify(folder)
        if problems:
            raise RuntimeError(f"{folder}: shards do not verify: {problems[0]}")
        c = index.counts
        skipped = sum(c.skipped_segments.values()) + sum(c.skipped_documents.values())
        self.console.print(
            f"{policy}: {c.segments_written} examples ({skipped} skipped), mask ratio "
            f"{c.mask_ratio:.1%} -> {folder}"
        )
        return index

    def pretrain(self, name: str, shards: Path, init: str, steps: int) -> Path:
        """One run of train/pretrain.py in its own process; returns the exported model."""
        run = self.out / "pretrain" / name
        hf = run / "hf"
        if (run / "DONE").exists():
            self.console.print(f"{name}: exists ({hf})")
            return hf
        run.mkdir(parents=True, exist_ok=True)
        c = self.cfg
        cfg = {
            "model": {"name_or_path": init, "tokenizer": str(self.tokenizer),
                      "config": {} if init else c.model},
            "seed": c.seed, "max_length": c.max_length, "global_batch": c.batch,
            "micro_batch": c.batch // 2, "total_steps": steps, "zero_stage": 1,
            "precision": "fp32", "optim": {"lr": c.lr, "warmup_steps": min(c.warmup, steps)},
            "data": {"shards": [str(shards)], "remask": c.remask}, "output_dir": str(run),
            "save_every": max(100, steps // 4), "log_every": max(1, steps // 20),
        }  # fmt: skip
        import yaml

        path = run / "pretrain.yaml"
        path.write_text(
            f"# Used by: python -m train.pretrain --config {path}  (written by maskpt demo)\n"
            + yaml.safe_dump(cfg, sort_keys=False)
        )
        cmd = [sys.executable, "-m", "train.pretrain", "--config", str(path)]
        if (run / "checkpoints" / "latest").exists():
            cmd.append("--resume")
        self.console.print("$ " + " ".join(cmd))
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise RuntimeError(
                f"pre-training {name} failed (exit {proc.returncode}); its output is above, "
                f"its log in {run / 'log.jsonl'}; rerun the demo to resume it"
            )
        logs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        self.console.print(
            f"{name}: loss {logs[0]['loss']:.3f} (step {logs[0]['step']}) -> "
            f"{logs[-1]['loss']:.3f} (step {logs[-1]['step']})"
        )
        (run / "DONE").write_text("")
        return hf

    def train_policy(self, policy: str, base: Path) -> Path:
        folder = self.out / "policies" / LEARNED[policy]
        if (folder / "DONE").exists():
            self.console.print(f"{policy}: exists ({folder})")
            return folder
        examples = str(self.world / "policy_examples.jsonl")
        c = self.cfg
        if policy == "sup_v1":
            from train.supervised_policy import SupervisedConfig, train

            s = train(SupervisedConfig(
                examples=examples, model=str(base), output_dir=str(folder), epochs=1000,
                max_steps=c.policy_steps, lr=1e-3, batch_size=32, hidden=128,
                max_length=c.max_length, max_span_length=6, seed=c.seed,
            ))  # fmt: skip
            self.console.print(
                f"sup_v1: validation top-1 span accuracy {s['val_top1']:.2f} -> {folder}"
            )
        else:
            from train.meta_policy import MetaConfig, train

            last = train(MetaConfig(
                examples=examples, model=str(base), output_dir=str(folder),
                steps=c.policy_steps, batch_size=8, pretrain_lr=1e-3, finetune_lr=1e-3,
                policy_lr=1e-3, beta=10.0, hidden=128, max_length=c.max_length, seed=c.seed,
            ))  # fmt: skip
            self.console.print(
                f"meta_v1: last meta loss {last['meta_loss']:.4f}, mask rate "
                f"{last['mask_rate']:.3f} -> {folder}"
            )
        (folder / "DONE").write_text("")
        return folder

    def finetune(self, row: str, model: Path, seed: int) -> dict:
        from train.finetune import FinetuneConfig, finetune

        c = self.cfg
        run = self.out / "finetune" / row / "synth" / f"lr{c.ft_lr:g}_bs{c.ft_batch}_seed{seed}"
        if (run / "metrics.json").exists():
            return json.loads((run / "metrics.json").read_text())
        cfg = FinetuneConfig(
            task="synth", data_dir=str(self.world / "qa"), model=str(model),
            output_dir=str(run), seed=seed, lr=c.ft_lr, batch_size=c.ft_batch,
            max_steps=c.ft_steps, eval_every=max(1, c.ft_steps // 8), patience=100,
            warmup_steps=max(1, c.ft_steps // 10), label_smoothing=0.0, dropout=0.0,
            num_beams=1, max_gen_length=8, max_source_length=32, max_target_length=12,
            target_prefix_space=True, report_to=("none",), log_every=max(1, c.ft_steps // 8),
        )  # fmt: skip
        metrics = finetune(cfg)
        self.console.print(
            f"{row} seed {seed}: dev EM {metrics['dev']:.3f}, test EM {metrics['test']:.3f}"
        )
        return metrics


def run_demo(cfg: DemoConfig, out: Path) -> dict:
    """All stages; returns the results table (also in OUT/results.json)."""
    from rich.console import Console

    from maskpt.demo_results import analysis, results

    console = Console(highlight=False)
    out = Path(out)
    _claim(out, cfg)
    d = Demo(cfg, out, console)
    console.rule(f"[bold]maskpt demo -> {out}")
    d.make_world()
    d.make_tokenizer()

    from preprocess.pipeline import ray_session

    d.stage("general pre-training (orig_v1 on the background people)")
    with ray_session(num_cpus=2):  # one local Ray for the preprocessing runs
        d.preprocess("orig_v1", d.world / "background.jsonl", out / "shards" / "general")
    base = d.pretrain("general", out / "shards" / "general", "", cfg.general_steps)

    d.stage("learned policies, trained on the QA train split")
    checkpoints = {p: d.train_policy(p, base) for p in cfg.policies if p in LEARNED}
    if not checkpoints:
        console.print("none asked for")

    d.stage("preprocess the world's corpus with every policy (local Ray)")
    with ray_session(num_cpus=2):
        for p in cfg.policies:
            d.preprocess(
                p, d.world / "corpus.jsonl", out / "shards" / p, str(checkpoints.get(p, ""))
            )

    d.stage("intermediate pre-training, one run per policy (train/pretrain.py)")
    models = {NONE_ROW: base}
    for p in cfg.policies:
        models[p] = d.pretrain(p, out / "shards" / p, str(base), cfg.steps)

    d.stage(f"fine-tune and evaluate ({cfg.seeds} seeds per row)")
    for row, model in models.items():
        for seed in range(cfg.seeds):
            d.finetune(row, model, seed)

    d.stage("results table and mask analysis")
    plots = analysis(out, cfg, console)
    table = results(out, [NONE_ROW, *cfg.policies], plots, console)
    return table


DEMO_EXAMPLES = """examples:
  maskpt demo --size tiny --out runs/demo-tiny     # every stage in a few minutes (CI)
  maskpt demo steps=2000 world.people=200          # any DemoConfig field, anywhere on the line
"""


def config_args():
    from maskpt.core.cli_args import ConfigArgs

    args = ConfigArgs(DemoConfig, "maskpt demo", __doc__, DEMO_EXAMPLES)
    args.parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    args.parser.add_argument(
        "--size", choices=list(SIZES), default="default",
        help="tiny: a few minutes (CI); default: ~33 min on 2 CPU cores; large: GPU or hours",
    )  # fmt: skip
    args.parser.add_argument("--overwrite", action="store_true",
                             help="delete OUT and start over (a rerun otherwise resumes, and "
                                  "a finished demo only prints its table again)")  # fmt: skip
    return args


def main(argv=None) -> int:
    cfg, ns = config_args().parse(argv, presets=lambda ns: SIZES[ns.size])
    out = Path(ns.out)
    if ns.overwrite and out.exists():
        import shutil

        shutil.rmtree(out)
    run_demo(cfg, out)
    return 0

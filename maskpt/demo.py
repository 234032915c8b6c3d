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

Stage layout under OUT: `maskpt/demo_stages.py`; the stages as a graph (what
`maskpt study --config configs/study/demo.yaml` runs as Ray tasks):
`maskpt/demo_plan.py`.

Everything lands in OUT (default runs/demo); `demo.json` holds the config,
and a rerun with another config into the same OUT is refused.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from pathlib import Path

from rich.console import Console

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import to_dict
from maskpt.core.io import claim_spec
from maskpt.demo_config import POLICIES, SIZES, DemoConfig
from maskpt.demo_plan import TITLES, check_stage, run_step, steps
from maskpt.demo_stages import Demo
from train.distributed import name_cpu_accelerator

__all__ = ["POLICIES", "SIZES", "DemoConfig", "run_demo", "main"]


def _claim(out: Path, cfg: DemoConfig) -> None:
    """Record the config in OUT/demo.json; refuse an OUT made with another one."""

    claim_spec(out / "demo.json", to_dict(cfg), f"{out} holds a demo with another config")


def run_demo(cfg: DemoConfig, out: Path) -> dict:
    """All stages, in order, in this process; returns the results table (also in
    OUT/results.json)."""
    from preprocess.pipeline import ray_session

    name_cpu_accelerator()  # the in-process fine-tuning imports DeepSpeed (via accelerate)
    console = Console(highlight=False, emoji=False)
    out = Path(out)
    _claim(out, cfg)
    d = Demo(cfg, out, console)
    console.rule(f"[bold]maskpt demo -> {out}")
    table: dict = {}
    for group, batch in itertools.groupby(steps(cfg), key=lambda s: s.group):
        d.stage(TITLES[group].format(c=cfg))
        for masking, run in itertools.groupby(batch, key=lambda s: s.id.startswith("preprocess/")):
            # preprocessing on a local Ray of the demo's own, whatever else runs here
            with ray_session("local", num_cpus=2) if masking else contextlib.nullcontext():
                for step in run:
                    table = run_step(d, step.id) or table
    return table


def run_one_stage(cfg: DemoConfig, out: Path, sid: str) -> None:
    """One stage (what `maskpt study` runs in each of its tasks): its inputs must be
    complete. Preprocessing inside a Ray task (RAY_ADDRESS set: the study's) masks in
    that task's process (the same output; masking actors of its own would wait for
    CPUs behind the study's training tasks); else on the demo's own local Ray."""
    from preprocess.pipeline import ray_session

    check_stage(cfg, sid)
    name_cpu_accelerator()
    out = Path(out)
    _claim(out, cfg)
    d = Demo(cfg, out, Console(highlight=False, emoji=False))
    if sid.startswith("preprocess/") and not os.environ.get("RAY_ADDRESS"):
        with ray_session("local", num_cpus=2):
            run_step(d, sid)
    else:
        d.preprocess_on_ray = False
        run_step(d, sid)


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
    args.parser.add_argument(
        "--stage",
        metavar="ID",
        help="run only this stage of the demo's graph (maskpt/demo_plan.py), its inputs "
        "complete: what `maskpt study --config configs/study/demo.yaml` runs in each task",
    )
    return args


def main(argv=None) -> int:
    cfg, ns = config_args().parse(argv, presets=lambda ns: SIZES[ns.size])
    out = Path(ns.out)
    if ns.stage:
        run_one_stage(cfg, out, ns.stage)
        return 0
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

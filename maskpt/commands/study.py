"""`maskpt study`: the paper's whole study as one resumable command, and
`maskpt study status OUT`."""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.errors import exit_on_user_error

STUDY_DOC = """Run a study: train the learned policies, mask the corpus with every
row's policy, pre-train each row (per seed), fine-tune every model on every
task by the sweep protocol, and write the report -- each stage an existing
maskpt command in its own process, as a Ray task holding the GPUs and CPUs it
needs (embedded local Ray unless --address; --no-ray: one after another here).
Every output lands under OUT; stages that are done are skipped, so rerunning
the same command resumes the study after any interruption. A stage that fails
is retried, then recorded; the stages that do not need it go on.
`maskpt study status OUT` shows where it stands (also while it runs)."""

STUDY_EXAMPLES = """examples:
  maskpt study --config configs/study/paper.yaml --dry-run     # the stages and their GPU-hours
  ray exec ray_cluster.yaml 'maskpt study --config configs/study/paper.yaml --address auto'
  maskpt study status runs/study/paper
"""


def study_args():
    from maskpt.study.spec import StudyConfig

    args = ConfigArgs(StudyConfig, "maskpt study", STUDY_DOC, STUDY_EXAMPLES, flags=False)
    args.parser.add_argument(
        "--address",
        default=None,
        help="Ray address: auto joins the running cluster (what ray exec gives); default: the "
        "cluster in RAY_ADDRESS or the one `ray start` started here, else an embedded local Ray",
    )
    args.parser.add_argument(
        "--no-ray", action="store_true", help="run the stages one after another in this process"
    )
    args.parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the stages, their resources and GPU-hours, and stop",
    )
    return args


def dry_run(graph, name: str) -> str:
    """The stages, their resources and the GPU-hours they cost."""
    lines = [f"study {name}: {len(graph.order)} stages", ""]
    by_kind: dict[str, list] = defaultdict(list)
    for sid in graph.order:
        s = graph.stages[sid]
        by_kind[s.kind].append(s)
        hours = s.cost.get("gpu_hours")
        if hours is not None:
            cost = f"{hours:8.1f} GPU-h"
        else:
            cost = "   (CPU)" if s.gpus == 0 else "   (no measured speed)"
        if s.kind == "sweep":
            cost += f"  ({s.cost['runs']:.0f} runs)"
        lines.append(f"  {sid:<40} gpus {s.gpus:g} cpus {s.cpus:g} {cost}")
    lines += ["", "by kind:"]
    total = 0.0
    for kind, stages in by_kind.items():
        known = [s.cost["gpu_hours"] for s in stages if "gpu_hours" in s.cost]
        total += sum(known)
        gap = len([s for s in stages if s.gpus > 0 and "gpu_hours" not in s.cost])
        note = f" ({gap} with no measured speed)" if gap and kind in ("pretrain", "sweep") else ""
        lines.append(f"  {kind:<11} {len(stages):4d} stages {sum(known):10.1f} GPU-hours{note}")
    lines.append(f"  {'total':<11} {len(graph.order):4d} stages {total:10.1f} GPU-hours")
    return "\n".join(lines) + "\n"


def run_study(argv) -> int:
    cfg, ns = study_args().parse(argv)  # --help stops here, before the heavy imports

    from maskpt.study.plan import plan
    from maskpt.study.runner import Runner

    graph = plan(cfg)
    if ns.dry_run:
        sys.stdout.write(dry_run(graph, cfg.name))
        return 0
    runner = Runner(
        graph,
        cfg.out,
        cfg.name,
        cfg.resources.retries,
        progress=True,
        limits={"preprocess": cfg.resources.preprocess_parallel},
    )
    print(f"study {cfg.name}: {len(graph.order)} stages, {len(runner.skipped)} done already")
    if ns.no_ray:
        summary = runner.run_here()
    else:
        from preprocess.pipeline import ray_session

        # the embedded local Ray (what ray.init makes when it finds no cluster): no node joins
        fixed = ns.address == "local" or (
            ns.address is None
            and not os.environ.get("RAY_ADDRESS")
            and not Path("/tmp/ray/ray_current_cluster").exists()
        )
        with ray_session(ns.address):
            summary = runner.run_on_ray(fixed=fixed)
    print(
        f"study {cfg.name}: {len(summary['ran'])} stage(s) ran, {len(summary['skipped'])} were "
        f"done, {len(summary['failed'])} failed, {len(summary['waiting'])} not run; "
        f"`maskpt study status {cfg.out}` shows each"
    )
    for sid, error in summary["failed"].items():
        print(f"  failed: {sid}: {error}", file=sys.stderr)
    return 1 if summary["failed"] or summary["waiting"] else 0


def show_status(argv) -> int:
    from maskpt.study.status import render, stage_rows

    ap = argparse.ArgumentParser(
        prog="maskpt study status",
        description="Each stage of a study with its state (done, running where, failed with "
        "its error, waiting on what), elapsed time, and the GPU-hours left.",
    )
    ap.add_argument("out", help="the study's output folder (its `out` field)")
    ns = ap.parse_args(argv)
    name, rows = stage_rows(ns.out)
    sys.stdout.write(render(name, rows))
    return 0


def main(argv) -> int:
    if argv and argv[0] == "status":
        return exit_on_user_error("maskpt study status", lambda: show_status(argv[1:]))
    return exit_on_user_error("maskpt study", lambda: run_study(argv))

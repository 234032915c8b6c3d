"""GPU-hours of a study's stages from measured throughputs (`Throughput`),
for `maskpt study --dry-run`. Upper bounds, in the README's terms:

- pre-training: total_steps x global_batch x max_length tokens at the
  measured tokens/s of the full-target recipe (span-target policies decode
  fewer tokens, so cost less; not measured);
- a fine-tuning sweep: its runs (`staged`: every lr at the first batch size,
  the other batch sizes at the best lr, the other seeds at the best setting;
  `grid`: all of them x seeds), each `max_epochs` over the training split
  plus a dev evaluation every `eval_every_epochs`, every run at the measured
  batch-32 speed (early stopping ends runs sooner; not counted).

A stage whose size is unknown (a task with no `task_sizes` entry, no
measured speed) gets no hours: `--dry-run` says so rather than guess.
"""

from __future__ import annotations

import math

from maskpt.study.spec import Throughput
from train.finetune import FinetuneConfig
from train.pretrain_config import PretrainConfig
from train.sweep import SweepConfig


def pretrain_cost(cfg: PretrainConfig, speed: Throughput) -> dict[str, float]:
    tokens = float(cfg.total_steps) * cfg.global_batch * cfg.max_length
    if speed.pretrain_tokens_per_s <= 0:
        return {"tokens": tokens}
    return {"tokens": tokens, "gpu_hours": tokens / speed.pretrain_tokens_per_s / 3600}


def sweep_runs(sweep: SweepConfig) -> int:
    """How many fine-tuning runs `maskpt sweep` makes for one (model, task)."""
    lrs, sizes, seeds = len(sweep.lrs), len(sweep.batch_sizes), len(sweep.seeds)
    if sweep.search == "grid":
        return lrs * sizes * seeds
    return lrs + (sizes - 1) + (seeds - 1)


def run_hours(ft: FinetuneConfig, train: int, dev: int, speed: Throughput) -> float | None:
    """Hours of one fine-tuning run of `ft` on a task with `train`/`dev` examples."""
    if speed.finetune_examples_per_s <= 0 or speed.generate_examples_per_s <= 0:
        return None
    examples = train * ft.train_fraction
    if ft.max_steps > 0:
        epochs = ft.max_steps * ft.batch_size / max(examples, 1)
    else:
        epochs = float(ft.max_epochs)
    if ft.eval_every == 0:
        evals = math.ceil(epochs / ft.eval_every_epochs)
    else:  # every eval_every optimizer steps
        evals = math.ceil(epochs * examples / ft.batch_size / ft.eval_every)
    seconds = epochs * examples / speed.finetune_examples_per_s
    seconds += evals * dev / speed.generate_examples_per_s
    return seconds / 3600


def sweep_cost(
    sweep: SweepConfig, ft: FinetuneConfig, task: str, speed: Throughput
) -> dict[str, float]:
    runs = sweep_runs(sweep)
    size = speed.task_sizes.get(task)
    if size is None:
        return {"runs": runs}
    hours = run_hours(ft, size[0], size[1], speed)
    if hours is None:
        return {"runs": runs}
    return {"runs": runs, "run_hours": hours, "gpu_hours": runs * hours}

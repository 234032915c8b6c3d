"""What a study is: the rows (masking policies) to pre-train, the downstream
tasks each is fine-tuned on, how many seeds, and the settings files every
stage starts from (`configs/study/*.yaml`; `maskpt study --help` lists the
fields). Checked when it is read; each stage's own config is checked when the
plan is made (`maskpt/study/plan.py`), before anything runs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from maskpt.core.config import ConfigError
from maskpt.demo_config import demo_from
from policies.registry import names as policy_names
from train.policy_sources import POLICY_TASKS
from train.tasks import TASKS

LEARNED_KINDS = {"sup_v1": "supervised", "meta_v1": "meta"}
"""Learned policy -> its `maskpt train-policy` kind."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Row:
    name: str = ""
    """The row's name in the report (letters, digits, `_`, `-`, `.`), e.g. ssm, sup-tqa."""
    policy: str = ""
    """A registered masking policy (`maskpt policies`): orig_v1, rand_v1, ssm_v1, sup_v1, meta_v1."""
    learned_on: str = ""
    """Learned policies: the task whose training split trains the policy (one of the
    policy-training tasks, e.g. nq, tqa); empty for a heuristic policy."""
    policy_config: dict[str, Any] = field(default_factory=dict)
    """The policy's config when the corpus is masked (a learned policy's checkpoint is
    filled in by the study)."""
    trainer: dict[str, Any] = field(default_factory=dict)
    """Learned policies: trainer fields (`maskpt train-policy supervised|meta --help`) over
    the study's `policy_trainer` ones."""
    tasks: tuple[str, ...] = ()
    """Downstream tasks this row is fine-tuned on; empty: every task of the study."""

    def __post_init__(self):
        if not _NAME.fullmatch(self.name or ""):
            raise ValueError(f"rows: name {self.name!r}: letters, digits, _ - . only")
        if self.policy not in policy_names():
            raise ValueError(
                f"rows: {self.name}: policy {self.policy!r} is not registered "
                f"({', '.join(policy_names())})"
            )
        learned = self.policy in LEARNED_KINDS
        if learned and self.learned_on not in POLICY_TASKS:
            raise ValueError(
                f"rows: {self.name}: a learned policy needs learned_on, one of "
                f"{', '.join(POLICY_TASKS)}; got {self.learned_on!r}"
            )
        if not learned and (self.learned_on or self.trainer):
            raise ValueError(f"rows: {self.name}: learned_on/trainer are for learned policies")


@dataclass(frozen=True)
class Resources:
    pretrain_gpus: int = 1
    """GPUs of one pre-training run, all on one node (1 or 0: one process,
    `python -m train.pretrain`; more: `torchrun --nproc_per_node N`)."""
    pretrain_cpus: float = 4.0
    """CPUs of one pre-training run (its data loader workers)."""
    policy_gpus: float = 1.0
    """GPUs of one learned-policy training run."""
    finetune_gpus: float = 1.0
    """GPUs of one (model, task) fine-tuning sweep; its runs go one after another on them."""
    preprocess_cpus: float = 0.0
    """CPUs the preprocessing driver holds. Its masking workers are Ray actors holding their
    own (`preprocess_set.workers`, `gpus_per_worker`); a driver holding CPUs as well could
    keep them from starting on a small cluster (two drivers on 2 CPUs: no CPU left)."""
    retries: int = 2
    """Restarts of a stage whose process failed or whose node was lost, before it is failed
    (a restarted pre-training run resumes from its last checkpoint)."""
    preprocess_parallel: int = 1
    """Preprocessing stages running at once. Each sizes its masking actors to the whole
    cluster, so more only compete; and drivers each holding some of their actors while
    waiting for the rest can stall one another for good."""

    def __post_init__(self):
        if self.retries < 0 or min(self.pretrain_gpus, self.policy_gpus, self.finetune_gpus) < 0:
            raise ValueError("resources: retries and GPU counts must be >= 0")
        if self.preprocess_parallel < 1:
            raise ValueError("resources: preprocess_parallel must be >= 1")


@dataclass(frozen=True)
class Throughput:
    """Measured speeds behind `--dry-run`'s GPU-hours (BENCHMARKS.md names where each
    was measured); a stage with no measured speed is listed with no hours."""

    pretrain_tokens_per_s: float = 158_092.0
    """Pre-training tokens per second per GPU (the recipe on one H100, 2026-11-27)."""
    finetune_examples_per_s: float = 294.0
    """Fine-tuning training examples per second per GPU (batch 32, bf16, one H100)."""
    generate_examples_per_s: float = 268.0
    """Evaluated (generated) examples per second per GPU (beam 4, batch 64, one H100)."""
    task_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Task -> (train, dev) example counts, for tasks whose files are not under `data`."""


@dataclass(frozen=True)
class StudyConfig:
    name: str = ""
    """The study's name (shown by `status` and the report)."""
    out: str = ""
    """Output folder; on a cluster, one every node sees (a shared filesystem)."""
    corpus: tuple[str, ...] = ()
    """The pre-training corpus: `maskpt preprocess` inputs (dumps, JSONL, text)."""
    base_model: str = "facebook/bart-base"
    """The model intermediate pre-training starts from (hub name or folder); also the
    `none` row's model and the learned policies' encoder."""
    tokenizer: str = ""
    """Tokenizer for preprocessing (empty: the base model's)."""
    rows: tuple[Row, ...] = ()
    """The pre-trained models, one per row of the tables."""
    baseline: bool = True
    """Also fine-tune the base model itself: the `none` row (no intermediate pre-training)."""
    tasks: tuple[str, ...] = ()
    """Downstream tasks (nq tqa wq ay2 zsre wow ropes wiqa quartz, or synth)."""
    data: str = "data"
    """A folder holding a folder per task (`maskpt data download TASK DIR/TASK`)."""
    pretrain_seeds: int = 1
    """Intermediate pre-training runs per row (seed k: data order and per-epoch masks)."""
    policy_seeds: int = 1
    """Training runs per learned policy; pre-training run k uses policy seed k mod this."""
    preprocess: str = ""
    """A `maskpt preprocess` YAML every row's preprocessing starts from."""
    preprocess_set: dict[str, Any] = field(default_factory=dict)
    """Its fields set for this study (over the file)."""
    pretrain: str = ""
    """A pre-training recipe YAML (`train/pretrain.py`) every row's runs start from."""
    pretrain_set: dict[str, Any] = field(default_factory=dict)
    """Its fields set for this study (dotted keys allowed: `optim.lr`)."""
    finetune: str = ""
    """A `maskpt finetune` YAML every fine-tuning run starts from."""
    sweep: dict[str, Any] = field(default_factory=dict)
    """`maskpt sweep` fields for every (model, task): lrs, batch_sizes, seeds, search, retries."""
    policy_trainer: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`supervised` / `meta` -> trainer fields for every learned row of that kind."""
    resources: Resources = field(default_factory=Resources)
    """What each stage holds on the cluster."""
    throughput: Throughput = field(default_factory=Throughput)
    """Measured speeds for `--dry-run`."""
    demo: dict[str, Any] = field(default_factory=dict)
    """`maskpt demo`'s synthetic-world study instead of the fields above (but name, out and
    resources): its config's fields (`maskpt demo --help`), `size` for one of its presets.
    Its stages are `maskpt demo --stage ID`; training stages hold `resources.pretrain_cpus`
    CPUs and no GPU (configs/study/demo.yaml)."""

    def __post_init__(self):
        if not _NAME.fullmatch(self.name or ""):
            raise ValueError(f"name: required, letters, digits, _ - . only; got {self.name!r}")
        if self.demo:
            if not self.out:
                raise ValueError("out: required (see maskpt study --help)")
            mixed = [
                k for k in ("corpus", "rows", "tasks", "pretrain", "finetune") if getattr(self, k)
            ]
            if mixed:
                raise ValueError(f"demo: a demo study takes no {mixed[0]} (its own world has them)")
            demo_from(self.demo, where="demo")  # checked here, as every stage's config is
            return
        for key in ("out", "corpus", "rows", "tasks", "pretrain", "finetune"):
            if not getattr(self, key):
                raise ValueError(f"{key}: required (see maskpt study --help)")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"tasks: unknown {unknown}; tasks: {', '.join(TASKS)}")
        names = [r.name for r in self.rows]
        twice = sorted({n for n in names if names.count(n) > 1} | ({"none"} & set(names)))
        if twice:
            raise ValueError(f"rows: name {twice[0]!r} used twice (`none` is the baseline's)")
        for r in self.rows:
            extra = [t for t in r.tasks if t not in self.tasks]
            if extra:
                raise ValueError(f"rows: {r.name}: tasks {extra} are not among the study's tasks")
        kinds = set(LEARNED_KINDS.values())
        if set(self.policy_trainer) - kinds:
            raise ValueError(f"policy_trainer: keys are {', '.join(sorted(kinds))}")
        if self.pretrain_seeds < 1 or self.policy_seeds < 1:
            raise ValueError("pretrain_seeds and policy_seeds must be >= 1")
        for key in ("policy", "output", "tokenizer", "inputs", "seed", "address"):
            if key in self.preprocess_set:
                raise ConfigError(f"preprocess_set.{key}: set by the study for each row")

    def row_tasks(self, row: Row) -> tuple[str, ...]:
        return row.tasks or self.tasks

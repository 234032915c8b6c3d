"""A study config as a graph of stages: each stage an existing command with
the config it reads, built and checked here, before anything runs.

    policy/<row>/seed<j>            maskpt train-policy supervised|meta   (learned rows)
    preprocess/<row>[/seed<j>]      maskpt preprocess      (per policy seed of a learned row)
    pretrain/<row>/seed<k>          python -m train.pretrain (torchrun for several GPUs)
    sweep/<model>/<task>            maskpt sweep           (model: none, <row>, <row>-pt<k>)
    report                          maskpt report

Outputs, under OUT: policies/<row>/seed<j>/, shards/<row>[-policy_seed<j>]/,
pretrain/<row>/seed<k>/ (its `hf/` export is the model), sweeps/<model>/<task>/
(what `maskpt sweep` writes), report/. Paths in the stages' configs are
absolute, so a stage runs the same on any node that sees OUT.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from maskpt.core.config import build_dataclass, merge, read_yaml_mapping, set_dotted
from maskpt.demo_config import demo_from
from maskpt.demo_plan import study_stages
from maskpt.study.cost import pretrain_cost, sweep_cost
from maskpt.study.graph import Graph, Stage
from maskpt.study.spec import LEARNED_KINDS, Row, StudyConfig
from preprocess.config import PreprocessConfig
from train.finetune import FinetuneConfig
from train.meta_policy import MetaConfig
from train.pretrain_config import PretrainConfig
from train.supervised_policy import SupervisedConfig
from train.sweep import SweepConfig

TRAINERS = {"supervised": SupervisedConfig, "meta": MetaConfig}
SWEEP_SETS = {"task", "model", "lr", "batch_size", "seed", "output_dir", "data_dir"}
"""FinetuneConfig fields that `maskpt sweep` sets for each run."""


def _path(p: str) -> str:
    """A local path made absolute (a URL such as s3://... stays as it is)."""
    return p if "://" in p else str(Path(p).resolve())


def _local_or_hub(p: str) -> str:
    """A local folder made absolute; a hub name (nothing there) stays as it is."""
    return str(Path(p).resolve()) if p and Path(p).exists() else p


def _dotted(base: dict, sets: dict) -> dict:
    """`base` with each dotted key of `sets` set (replaced, not merged); `base` untouched."""
    out = copy.deepcopy(base)  # set_dotted writes into nested dicts, which `base` shares
    for key, value in sets.items():
        set_dotted(out, key, value, "pretrain_set")
    return out


class Planner:
    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self.out = Path(cfg.out).resolve()
        self.data = Path(cfg.data).resolve()
        self.base = _local_or_hub(cfg.base_model)
        self.tokenizer = _local_or_hub(cfg.tokenizer or cfg.base_model)
        self.stages: list[Stage] = []
        self.files = {k: getattr(cfg, k) for k in ("preprocess", "pretrain", "finetune")}
        self.yaml = {k: read_yaml_mapping(v) if v else {} for k, v in self.files.items()}

    def add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        return stage

    def policy(self, row: Row, seed: int) -> Stage:
        kind = LEARNED_KINDS[row.policy]
        folder = self.out / "policies" / row.name / f"seed{seed}"
        data = {
            "task": row.learned_on,
            "data_dir": str(self.data / row.learned_on),
            "model": self.base,
            **self.cfg.policy_trainer.get(kind, {}),
            **row.trainer,
            "output_dir": str(folder),
        }
        data["seed"] = int(data.get("seed", 0)) + seed
        sid = f"policy/{row.name}/seed{seed}"
        build_dataclass(TRAINERS[kind], data, where=f"stage {sid}")
        return self.add(
            Stage(
                sid,
                "policy",
                ("maskpt", "train-policy", kind, "--config", "{config}"),
                config=data,
                gpus=self.cfg.resources.policy_gpus,
                output=str(folder),
            )
        )

    def preprocess(self, row: Row, policy: Stage | None, seed: int) -> Stage:
        name = row.name if seed == 0 else f"{row.name}-policy_seed{seed}"
        folder = self.out / "shards" / name
        base = merge(self.yaml["preprocess"], self.cfg.preprocess_set)
        # the file's policy_config is for the file's policy (wikipedia_ssm.yaml's on_no_entity)
        own = base.get("policy_config", {}) if base.get("policy") == row.policy else {}
        policy_config = {**own, **row.policy_config}
        if policy is not None:
            policy_config["checkpoint"] = policy.output
        data = {
            **base,
            "inputs": [_path(p) for p in self.cfg.corpus],
            "output": str(folder),
            "policy": row.policy,
            "policy_config": policy_config,
            "tokenizer": self.tokenizer,
            "address": None,  # the study's Ray: the runner sets RAY_ADDRESS for its stages
        }
        sid = f"preprocess/{row.name}" + (f"/seed{seed}" if policy is not None else "")
        build_dataclass(
            PreprocessConfig, data, where=f"stage {sid} ({self.files['preprocess'] or 'defaults'})"
        )
        return self.add(
            Stage(
                sid,
                "preprocess",
                ("maskpt", "preprocess", "--config", "{config}"),
                deps=(policy.id,) if policy else (),
                config=data,
                cpus=self.cfg.resources.preprocess_cpus,
                output=str(folder),
            )
        )

    def pretrain(self, row: Row, shards: Stage, k: int) -> Stage:
        folder = self.out / "pretrain" / row.name / f"seed{k}"
        data: dict[str, Any] = _dotted(self.yaml["pretrain"], self.cfg.pretrain_set)
        seed = int(data.get("seed", 0)) + k
        data = merge(
            data,
            {
                "model": {"name_or_path": self.base},
                "data": {"shards": [shards.output], "mask_seed": seed},
                "seed": seed,
                "output_dir": str(folder),
            },
        )
        if self.cfg.tokenizer:
            data["model"]["tokenizer"] = self.tokenizer
        sid = f"pretrain/{row.name}/seed{k}"
        cfg = build_dataclass(PretrainConfig, data, where=f"stage {sid} ({self.files['pretrain']})")
        gpus = self.cfg.resources.pretrain_gpus
        launch = (
            ("python",) if gpus <= 1 else ("torchrun", "--standalone", f"--nproc_per_node={gpus}")
        )
        return self.add(
            Stage(
                sid,
                "pretrain",
                (*launch, "-m", "train.pretrain", "--config", "{config}"),
                deps=(shards.id,),
                config=data,
                resume=(str(folder / "checkpoints" / "latest"), "--resume"),
                gpus=float(gpus),
                cpus=self.cfg.resources.pretrain_cpus,
                output=str(folder / "hf"),
                cost=pretrain_cost(cfg, self.cfg.throughput),
            )
        )

    def sweep(self, model: str, path: str, task: str, deps: tuple[str, ...]) -> Stage:
        folder = self.out / "sweeps" / model / task
        settings = {k: v for k, v in self.yaml["finetune"].items() if k not in SWEEP_SETS}
        settings = merge(settings, self.cfg.sweep.get("finetune", {}))
        data = {
            **{k: v for k, v in self.cfg.sweep.items() if k != "finetune"},
            "checkpoints": [f"{model}={path}"],
            "tasks": [task],
            "data": [f"{task}={self.data / task}"],
            "out": str(folder),
            "finetune": settings,
            "address": None,
        }
        sid = f"sweep/{model}/{task}"
        sweep = build_dataclass(SweepConfig, data, where=f"stage {sid} (sweep)")
        finetune = build_dataclass(
            FinetuneConfig,
            {**settings, "task": task, "data_dir": "-", "model": path, "output_dir": "-"},
            where=f"stage {sid} ({self.files['finetune']})",
        )
        return self.add(
            Stage(
                sid,
                "sweep",
                ("maskpt", "sweep", "--config", "{config}"),
                deps=deps,
                config=data,
                gpus=self.cfg.resources.finetune_gpus,
                output=str(folder),
                cost=sweep_cost(sweep, finetune, task, self.cfg.throughput),
            )
        )

    def build(self) -> Graph:
        c = self.cfg
        sweeps: list[Stage] = []
        if c.baseline:
            sweeps += [self.sweep("none", self.base, t, ()) for t in c.tasks]
        for row in c.rows:
            learned = row.policy in LEARNED_KINDS
            n = c.policy_seeds if learned else 1
            shards = {}
            for j in sorted({k % n for k in range(c.pretrain_seeds)}):
                policy = self.policy(row, j) if learned else None
                shards[j] = self.preprocess(row, policy, j)
            for k in range(c.pretrain_seeds):
                run = self.pretrain(row, shards[k % n], k)
                model = row.name if c.pretrain_seeds == 1 else f"{row.name}-pt{k}"
                sweeps += [self.sweep(model, run.output, t, (run.id,)) for t in c.row_tasks(row)]
        self.add(
            Stage(
                "report",
                "report",
                (
                    "maskpt",
                    "report",
                    str(self.out / "sweeps"),
                    "--out",
                    str(self.out / "report"),
                    "--preface",  # the study's status table, which the runner keeps
                    str(self.out / "_study" / "status.md"),
                ),
                deps=tuple(s.id for s in sweeps),
                output=str(self.out / "report"),
            )
        )
        return Graph(self.stages)


def plan(cfg: StudyConfig) -> Graph:
    """Every stage of the study, each config checked (ConfigError naming the stage)."""
    if cfg.demo:
        demo = demo_from(cfg.demo, where="demo")
        return Graph(study_stages(demo, Path(cfg.out).resolve(), cfg.resources.pretrain_cpus))
    return Planner(cfg).build()

"""The DeepSpeed config a pre-training run uses, and its experiment logging.

The recipe computes a config from its fields (batch split, clipping, ZeRO
stage, precision); the user's own DeepSpeed JSON (`deepspeed:` in the YAML,
or `--deepspeed_config FILE`) is merged over it, key by key, so that ZeRO-3,
CPU offload, communication or monitor settings come from where DeepSpeed
users keep them. The batch arithmetic stays checked: a batch size in the
user's config that disagrees with global_batch / micro_batch / the world
size is refused by name.

Logging goes through DeepSpeed's own monitor (`tensorboard`, `csv_monitor`
sections): `report_to` switches them on, writing under OUTPUT/monitor/, and
the recipe writes its scalars with `engine.monitor.write_events` at every log
step (the tags `pretrain/loss`, `pretrain/lr`, `pretrain/grad_norm`,
`pretrain/tokens_per_s`, `pretrain/mask_ratio`, indexed by optimizer step).
W&B is the exception: DeepSpeed's wandb monitor logs its own
`Train/Samples/*` at step = samples seen, after which W&B drops every scalar
logged at step = optimizer step as out of order. So the `wandb` section
(`report_to: [wandb]`, with `project`, `group`, `team` from a user's DeepSpeed
JSON) is taken out of DeepSpeed's config and the recipe keeps its own run
(`WandbRun`, rank 0): every scalar carries `pretrain/step`, declared with
`define_metric` as the x-axis of `pretrain/*`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from maskpt.core.config import ConfigError, merge

REPORTERS = ("tensorboard", "csv", "wandb", "none")
_SECTION = {"tensorboard": "tensorboard", "csv": "csv_monitor", "wandb": "wandb"}
BATCH_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")


def check_reporters(report_to) -> None:
    """Known reporter names, and the package each needs installed: checked when
    the config is parsed, before any work (a missing `wandb` otherwise fails
    after the whole start-up, in a traceback per rank)."""

    bad = [r for r in report_to if r not in REPORTERS]
    if bad:
        raise ConfigError(f"report_to: unknown {bad} (choose from {', '.join(REPORTERS)})")
    if "wandb" in report_to and importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            "report_to: wandb needs the wandb package: pip install 'maskpt[wandb]' "
            "(or drop wandb from report_to)"
        )


def monitor_sections(report_to, out: Path, job: str) -> dict:
    """DeepSpeed monitor sections for `report_to` (tensorboard, csv, wandb, none)."""
    check_reporters(report_to)
    sections = {}
    for name in report_to:
        if name == "none":
            continue
        section = {"enabled": True}
        if name == "wandb":
            section["project"] = "maskpt"
        else:
            section.update(output_path=str(out / "monitor") + "/", job_name=job)
        sections[_SECTION[name]] = section
    return sections


def deepspeed_config(
    computed: dict,
    user: dict,
    source: str = "deepspeed",
    batch_fields: str = "global_batch, micro_batch",
) -> dict:
    """The user's DeepSpeed config merged over the computed one, refusing batch
    sizes that disagree with the recipe's (which decide the data stream)."""
    for key in BATCH_KEYS:
        if key in user and user[key] not in ("auto", computed[key]):
            raise ConfigError(
                f"{source}: {key} = {user[key]} disagrees with the recipe's {computed[key]} "
                f"(from {batch_fields} and the world size); set those fields instead"
            )
    user = {k: v for k, v in user.items() if not (k in BATCH_KEYS and v == "auto")}
    stage = user.get("zero_optimization", {}).get("stage", computed["zero_optimization"]["stage"])
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"{source}: zero_optimization.stage must be 0-3, got {stage}")
    return merge(computed, user)


def take_wandb(ds_config: dict) -> dict | None:
    """Remove the `wandb` section from a DeepSpeed config; return it when enabled."""
    section = ds_config.pop("wandb", None)
    return section if section and section.get("enabled") else None


class WandbRun:
    """The recipe's W&B run (rank 0), files under OUTPUT/monitor/wandb."""

    def __init__(self, section: dict, out: Path, config: dict):
        import wandb

        folder = out / "monitor"
        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=section.get("project") or "maskpt",
            group=section.get("group"),
            entity=section.get("team"),
            dir=str(folder),
            config=config,
            job_type="pretrain",
        )
        self.run.define_metric("pretrain/step")
        self.run.define_metric("pretrain/*", step_metric="pretrain/step")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(
            {**{f"pretrain/{k}": float(v) for k, v in scalars.items()}, "pretrain/step": step}
        )

    def close(self) -> None:
        self.run.finish()


def write_scalars(engine, step: int, scalars: dict[str, float], wandb_run=None) -> None:
    """The step's scalars to every monitor DeepSpeed has enabled (its writers
    flush each call and write on rank 0 only) and to the W&B run."""
    monitor = getattr(engine, "monitor", None)
    if monitor is not None and monitor.enabled:
        monitor.write_events([(f"pretrain/{k}", float(v), step) for k, v in scalars.items()])
    if wandb_run is not None:
        wandb_run.log(step, scalars)

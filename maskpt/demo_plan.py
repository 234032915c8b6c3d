"""`maskpt demo` as a graph of stages, one call of a `Demo` method each
(`maskpt/demo_stages.py`). `maskpt demo` runs them in order in its own
process; `maskpt study --config configs/study/demo.yaml` runs each as
`maskpt demo --stage ID` in its own process, a Ray task, in parallel where
the graph allows. Both write the same files under OUT.

    world, tokenizer
    preprocess/general, pretrain/general     the general model (orig_v1, background people)
    policy/<row>/seed<j>                     learned rows: sup_v1, meta_v1, *_transfer
    preprocess/<row>[/seed<j>]               every row's shards (learned: per policy seed)
    pretrain/<row>/seed<k>                   intermediate pre-training run k
    finetune/<row>/run<r>                    fine-tuning run r (none: the general model)
    results                                  the table and the mask analysis
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskpt.core.config import to_dict
from maskpt.core.errors import UserError
from maskpt.demo_config import DemoConfig
from maskpt.demo_results import analysis, results
from maskpt.demo_stages import LEARNED, TRANSFER, Demo, policy_of
from maskpt.study.graph import Stage

NONE_ROW = "none"

TITLES = {
    "world": "synthetic world",
    "tokenizer": "tokenizer",
    "general": "general pre-training (orig_v1 on the background people)",
    "policy": "learned policies, trained on the QA train split (transfer: some attributes), "
    "{c.policy_seeds} seeds each",
    "preprocess": "preprocess the world's corpus with every row's policy (local Ray)",
    "pretrain": "intermediate pre-training, {c.pretrain_seeds} runs per row (train/pretrain.py)",
    "finetune": "fine-tune and evaluate ({c.pretrain_seeds} x {c.seeds} runs per row)",
    "results": "results table and mask analysis",
}
"""Each group's heading (`str.format`ted with c=the DemoConfig), in `maskpt demo`'s
order (its 8 numbered stages)."""


@dataclass(frozen=True)
class Step:
    id: str
    group: str
    """A key of TITLES."""
    deps: tuple[str, ...] = ()


def rows_of(cfg: DemoConfig) -> list[str]:
    """The pre-trained rows: every policy, then the transfer rows of the learned ones."""
    rows = list(cfg.policies)
    if cfg.transfer:
        rows += [p + TRANSFER for p in cfg.policies if p in LEARNED]
    return rows


def policy_seed(cfg: DemoConfig, row: str, run: int) -> int:
    """The policy seed pre-training run `run` of `row` uses (0 for a heuristic row)."""
    return run % cfg.policy_seeds if policy_of(row) in LEARNED else 0


def _preprocess_id(row: str, seed: int) -> str:
    return f"preprocess/{row}" + (f"/seed{seed}" if policy_of(row) in LEARNED else "")


def steps(cfg: DemoConfig) -> list[Step]:
    """Every stage, in `maskpt demo`'s order (which is also a topological one)."""
    rows = rows_of(cfg)
    out = [
        Step("world", "world"),
        Step("tokenizer", "tokenizer", ("world",)),
        Step("preprocess/general", "general", ("tokenizer",)),
        Step("pretrain/general", "general", ("preprocess/general",)),
    ]
    learned = [r for r in rows if policy_of(r) in LEARNED]
    out += [
        Step(f"policy/{r}/seed{j}", "policy", ("pretrain/general",))
        for r in learned
        for j in range(cfg.policy_seeds)
    ]
    for r in rows:
        for j in sorted({policy_seed(cfg, r, k) for k in range(cfg.pretrain_seeds)}):
            need = (f"policy/{r}/seed{j}",) if r in learned else ()
            out.append(Step(_preprocess_id(r, j), "preprocess", ("tokenizer", *need)))
    for r in rows:
        for k in range(cfg.pretrain_seeds):
            shards = _preprocess_id(r, policy_seed(cfg, r, k))
            out.append(Step(f"pretrain/{r}/seed{k}", "pretrain", (shards, "pretrain/general")))
    finetunes = []
    for r in [NONE_ROW, *rows]:
        for run in range(cfg.pretrain_seeds * cfg.seeds):
            model = "pretrain/general" if r == NONE_ROW else f"pretrain/{r}/seed{run // cfg.seeds}"
            finetunes.append(Step(f"finetune/{r}/run{run}", "finetune", (model,)))
    out += finetunes
    out.append(Step("results", "results", tuple(s.id for s in finetunes)))
    return out


def run_step(d: Demo, sid: str) -> dict | None:
    """Run the stage `sid` (its inputs complete); it skips what it finds done. The
    results stage returns the table."""
    cfg, out = d.cfg, d.out
    general = out / "pretrain" / "general" / "hf"
    parts = sid.split("/")
    kind, row = parts[0], parts[1] if len(parts) > 1 else ""
    number = int(parts[2].removeprefix("seed").removeprefix("run")) if len(parts) > 2 else 0
    if sid == "world":
        d.make_world()
    elif sid == "tokenizer":
        d.make_tokenizer()
    elif sid == "preprocess/general":
        d.preprocess("orig_v1", d.world / "background.jsonl", out / "shards" / "general")
    elif sid == "pretrain/general":
        d.pretrain("general", out / "shards" / "general", "", cfg.general_steps)
    elif kind == "policy":
        d.train_policy(row, general, number)
    elif kind == "preprocess":
        learned = policy_of(row) in LEARNED
        checkpoint = str(d.policy_folder(row, number)) if learned else ""
        d.preprocess(policy_of(row), d.world / "corpus.jsonl", d.shards(row, number), checkpoint)
    elif kind == "pretrain":
        shards = d.shards(row, policy_seed(cfg, row, number))
        d.pretrain(f"{row}/seed{number}", shards, str(general), cfg.steps, number)
    elif kind == "finetune":
        pretrained = out / "pretrain" / row / f"seed{number // cfg.seeds}" / "hf"
        d.finetune(row, general if row == NONE_ROW else pretrained, number)
    elif sid == "results":
        rows = rows_of(cfg)
        plots = analysis(out, cfg, rows, d.console)
        return results(out, [NONE_ROW, *rows], plots, d.console)
    else:
        raise AssertionError(f"no such demo stage {sid}")
    return None


def check_stage(cfg: DemoConfig, sid: str) -> None:
    """A UserError unless `sid` is one of the demo's stages."""
    ids = [s.id for s in steps(cfg)]
    if sid not in ids:
        raise UserError(f"--stage {sid!r}: not a stage of this demo; its stages: {', '.join(ids)}")


def study_stages(cfg: DemoConfig, out: Path, torch_cpus: float) -> list[Stage]:
    """The stages as `maskpt study` runs them: `maskpt demo --stage ID` with the
    whole DemoConfig as its config file. Training stages hold `torch_cpus` (their
    threads); the others one (preprocessing masks in its task's process)."""
    config = to_dict(cfg)
    light = {"preprocess": 1.0, "world": 1.0, "tokenizer": 1.0, "results": 1.0}
    stages = []
    for s in steps(cfg):
        kind = s.id.split("/")[0]
        stages.append(
            Stage(
                s.id,
                kind,
                ("maskpt", "demo", "--config", "{config}", "--out", str(out), "--stage", s.id),
                deps=s.deps,
                config=config,
                cpus=light.get(kind, torch_cpus),
                output=str(out),
            )
        )
    return stages

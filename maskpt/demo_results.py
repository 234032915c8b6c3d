"""The demo's last stage: the paper's Table 1 layout for the synthetic world
(exact match x100, mean ± std over every run of a row — each a pre-training
seed and a fine-tuning seed —, best in bold, rows not significantly worse
underlined by a paired t-test over the runs, via `train/report.py`), EM per
attribute and on the transfer attributes, the meta policy's per-row mask
rates against its budget, and the mask analysis of every row's shards
(`maskpt/analyze.py`).

Writes OUT/results.md, OUT/results.json, OUT/em.png, OUT/loss.png (every
pre-training run's loss curve) and OUT/analysis/.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.table import Table

from maskpt.analyze import run_analysis, summary_lines
from maskpt.world import ATTRIBUTES
from train.report import build, collect, markdown

ROW_NAMES = {
    "none": "no intermediate pre-training",
    "orig_v1": "+ orig (BART)",
    "rand_v1": "+ rand",
    "ssm_v1": "+ ssm",
    "sup_v1": "+ sup",
    "meta_v1": "+ meta",
    "sup_v1_transfer": "+ sup, learned on {t}",
    "meta_v1_transfer": "+ meta, learned on {t}",
}
TRANSFER_COLUMN = "transfer"


def row_name(row: str, transfer=()) -> str:
    return ROW_NAMES.get(row, row).format(t=" + ".join(transfer))


def _attribute(example_id: str) -> str:
    """`p12-birth_year-0` -> birth_year (the world's question ids)."""
    return example_id.split("-")[1]


def runs_with_attributes(finetune_dir: Path, transfer=()) -> list[dict]:
    """Every fine-tuning run, plus one pseudo-run per attribute (test EM on
    that attribute's questions) and one for the attributes outside `transfer`
    (column "transfer"), so the report builds those columns too."""

    runs = collect([finetune_dir])
    out = list(runs)
    for r in runs:
        by_attr: dict = defaultdict(list)
        with (Path(r["path"]) / "predictions.test.jsonl").open() as f:
            for line in f:
                rec = json.loads(line)
                by_attr[_attribute(rec["id"])].append(rec["score"])
        for a, scores in by_attr.items():
            out.append({**r, "task": a, "test": sum(scores) / len(scores)})
        unseen = [x for a, scores in by_attr.items() if a not in transfer for x in scores]
        if transfer and unseen:
            out.append({**r, "task": TRANSFER_COLUMN, "test": sum(unseen) / len(unseen)})
    return out


def meta_budget(folder: Path, gamma: float = 0.15, eps: float = 0.05) -> dict:
    """Per-row mask rates of a meta_v1 folder against γ ± ε: the drawn masks
    (epoch 0, after post-processing) and the rates the probabilities imply."""

    from preprocess.inspection import iter_rows

    drawn, expected = [], []
    for _, _, row in iter_rows(folder):
        content = len(row["original_ids"]) - 2
        if content <= 0:
            continue
        drawn.append(sum(row["masked"]) / content)
        expected.append(sum(row["token_probs"]) / 1000 / content)
    inside = lambda x: float(np.mean(np.abs(np.array(x) - gamma) <= eps + 1e-9))  # noqa: E731
    return {
        "rows": len(drawn),
        "gamma": gamma,
        "eps": eps,
        "drawn_rate_mean": float(np.mean(drawn)),
        "drawn_in_budget": inside(drawn),
        "expected_rate_mean": float(np.mean(expected)),
        "expected_in_budget": inside(expected),
    }


def results(out: Path, rows: list[str], plots: list[str], console) -> dict:
    cfg = json.loads((out / "demo.json").read_text())
    transfer = tuple(cfg.get("transfer") or ())
    table = build(runs_with_attributes(out / "finetune", transfer))
    table["checkpoints"] = [r for r in rows if r in table["checkpoints"]]
    table["tasks"] = [
        "synth",
        *[a for a in ATTRIBUTES if a in table["tasks"]],
        *([TRANSFER_COLUMN] if TRANSFER_COLUMN in table["tasks"] else []),
    ]
    tests = sum(1 for c in table["cells"].values() if c["p_vs_best"] is not None)
    table["comparisons"], table["transfer"] = tests, list(transfer)
    table["meta_budget"] = {
        r: meta_budget(out / "shards" / r)
        for r in rows
        if r.startswith("meta_v1") and (out / "shards" / r).is_dir()
    }
    world = json.loads((out / "world" / "world.json").read_text())
    named = {
        **table,
        "checkpoints": [row_name(r, transfer) for r in table["checkpoints"]],
        "cells": {
            f"{row_name(c['checkpoint'], transfer)}/{c['task']}": c for c in table["cells"].values()
        },
    }
    unseen = [a for a in ATTRIBUTES if a not in transfer]
    md = [
        "# maskpt demo results",
        "",
        "Closed-book QA on the synthetic world: exact match x100 on the test people's questions "
        "(their facts are only in the pre-training corpus), mean ± std over each row's "
        f"{cfg['pretrain_seeds'] * cfg['seeds']} runs ({cfg['pretrain_seeds']} pre-training "
        f"seeds x {cfg['seeds']} fine-tuning seeds; `none`: fine-tuning seeds only). `synth` "
        "is all questions; the attribute columns split them"
        + (
            f"; `transfer` is the questions about {' and '.join(unseen)}, which the "
            f"transfer rows' policies never saw (they learned on {' and '.join(transfer)}): "
            "transfer to unseen question types within the world, not the paper's transfer "
            "from one dataset to another"
            if transfer
            else ""
        )
        + ". Rows: the general model fine-tuned directly, then one "
        "row per intermediate pre-training policy.",
        "",
        markdown(named),
        f"{tests} paired t-tests (each row against its column's best), not corrected for "
        "multiple comparisons.",
        "",
        *[
            f"Meta policy `{r}`: {b['drawn_in_budget']:.0%} of {b['rows']} rows have a drawn mask "
            f"rate within {b['gamma']} ± {b['eps']} (mean {b['drawn_rate_mean']:.3f}); the rates "
            f"its probabilities imply: {b['expected_in_budget']:.0%} (mean "
            f"{b['expected_rate_mean']:.3f})."
            for r, b in table["meta_budget"].items()
        ],
        "",
        f"World: {world['counts']}.",
        "",
        *[f"![{Path(p).stem}]({Path(p).relative_to(out)})" for p in [*plots, out / "loss.png"]],
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    (out / "results.json").write_text(json.dumps(table, indent=1) + "\n")
    _plot_em(table, out / "em.png")
    _plot_losses(out / "pretrain", out / "loss.png")

    view = Table(title="closed-book QA exact match x100 (mean ± std over runs)")
    view.add_column("intermediate pre-training")
    for t in table["tasks"]:
        view.add_column(t, justify="right")
    for c in table["checkpoints"]:
        cells = [table["cells"].get(f"{c}/{t}") for t in table["tasks"]]
        view.add_row(
            row_name(c, transfer),
            *[
                "–"
                if x is None
                else (
                    f"[bold]{x['mean']:.1f} ± {x['std']:.1f}[/bold]"
                    if x["best"]
                    else f"[underline]{x['mean']:.1f} ± {x['std']:.1f}[/underline]"
                    if x["not_significantly_worse"]
                    else f"{x['mean']:.1f} ± {x['std']:.1f}"
                )
                for x in cells
            ],
        )
    console.print(view)
    console.print(f"wrote {out / 'results.md'}, results.json, em.png, loss.png and analysis/")
    return table


def _plot_em(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table["checkpoints"]
    cells = [table["cells"][f"{r}/synth"] for r in rows]
    fig, ax = plt.subplots(figsize=(1.5 + 1.0 * len(rows), 3.6))
    names = [
        row_name(r, table.get("transfer", ())).replace(", learned on ", "\n(")
        + (")" if r.endswith("_transfer") else "")
        for r in rows
    ]
    ax.bar(
        names,
        [c["mean"] for c in cells],
        yerr=[c["std"] for c in cells],
        capsize=4,
        color="tab:blue",
    )
    ax.set_ylabel("test EM x100")
    ax.set_title("Closed-book QA on the synthetic world")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_losses(pretrain: Path, path: Path) -> None:
    """Every pre-training run's loss curve (its log.jsonl), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for log in sorted(pretrain.rglob("log.jsonl")):
        recs = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        name = str(log.parent.relative_to(pretrain))
        ax.plot([r["step"] for r in recs], [r["loss"] for r in recs], label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("pre-training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def analysis(out: Path, cfg, rows, console) -> list[str]:
    result = run_analysis(
        [out / "shards" / r for r in rows],
        out / "analysis",
        sample=cfg.analysis_sample,
        seed=cfg.seed,
    )
    console.print("\n".join(summary_lines(result)))
    return [
        str(out / "em.png"),
        str(out / "analysis" / "pos.png"),
        str(out / "analysis" / "freq.png"),
    ]

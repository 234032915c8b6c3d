"""The demo's last stage: the paper's Table 1 layout for the synthetic world
(exact match x100, mean ± std over fine-tuning seeds, best in bold, rows not
significantly worse underlined, via `train/report.py`), EM per attribute, and
the mask analysis of every policy's shards (`maskpt/analyze.py`).

Writes OUT/results.md, OUT/results.json, OUT/em.png and OUT/analysis/.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from maskpt.world import ATTRIBUTES

ROW_NAMES = {"none": "no intermediate pre-training", "orig_v1": "+ orig (BART)",
             "rand_v1": "+ rand", "ssm_v1": "+ ssm", "sup_v1": "+ sup", "meta_v1": "+ meta"}  # fmt: skip


def _attribute(example_id: str) -> str:
    """`p12-birth_year-0` -> birth_year (the world's question ids)."""
    return example_id.split("-")[1]


def runs_with_attributes(finetune_dir: Path) -> list[dict]:
    """Every fine-tuning run, plus one pseudo-run per attribute (test EM on
    that attribute's questions) so the report builds the breakdown columns too."""
    from train.report import collect

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
    return out


def results(out: Path, rows: list[str], plots: list[str], console) -> dict:
    from rich.table import Table

    from train.report import build, markdown

    table = build(runs_with_attributes(out / "finetune"))
    table["checkpoints"] = [r for r in rows if r in table["checkpoints"]]
    table["tasks"] = ["synth", *[a for a in ATTRIBUTES if a in table["tasks"]]]
    cfg = json.loads((out / "demo.json").read_text())
    world = json.loads((out / "world" / "world.json").read_text())
    named = {**table, "checkpoints": [ROW_NAMES.get(r, r) for r in table["checkpoints"]],
             "cells": {f"{ROW_NAMES.get(c['checkpoint'], c['checkpoint'])}/{c['task']}": c
                       for c in table["cells"].values()}}  # fmt: skip
    md = [
        "# maskpt demo results",
        "",
        "Closed-book QA on the synthetic world: exact match x100 on the test people's questions "
        "(their facts are only in the pre-training corpus), mean ± std over "
        f"{cfg['seeds']} fine-tuning seeds. `synth` is all questions; the other columns split "
        "them by attribute. Rows: the general model fine-tuned directly, then one row per "
        "intermediate pre-training policy.",
        "",
        markdown(named),
        f"World: {world['counts']}.",
        "",
        *[f"![{Path(p).stem}]({Path(p).relative_to(out)})" for p in plots],
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    (out / "results.json").write_text(json.dumps(table, indent=1) + "\n")
    _plot_em(table, out / "em.png")

    view = Table(title="closed-book QA exact match x100 (mean ± std over seeds)")
    view.add_column("intermediate pre-training")
    for t in table["tasks"]:
        view.add_column(t, justify="right")
    for c in table["checkpoints"]:
        cells = [table["cells"].get(f"{c}/{t}") for t in table["tasks"]]
        view.add_row(ROW_NAMES.get(c, c), *[
            "–" if x is None else
            (f"[bold]{x['mean']:.1f} ± {x['std']:.1f}[/bold]" if x["best"]
             else f"[underline]{x['mean']:.1f} ± {x['std']:.1f}[/underline]"
             if x["not_significantly_worse"] else f"{x['mean']:.1f} ± {x['std']:.1f}")
            for x in cells
        ])  # fmt: skip
    console.print(view)
    console.print(f"wrote {out / 'results.md'}, results.json, em.png and analysis/")
    return table


def _plot_em(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table["checkpoints"]
    cells = [table["cells"][f"{r}/synth"] for r in rows]
    fig, ax = plt.subplots(figsize=(1.5 + 1.0 * len(rows), 3.6))
    ax.bar([ROW_NAMES.get(r, r) for r in rows], [c["mean"] for c in cells],
           yerr=[c["std"] for c in cells], capsize=4, color="tab:blue")  # fmt: skip
    ax.set_ylabel("test EM x100")
    ax.set_title("Closed-book QA on the synthetic world")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def analysis(out: Path, cfg, console) -> list[str]:
    from maskpt.analyze import run_analysis, summary_lines

    result = run_analysis([out / "shards" / p for p in cfg.policies], out / "analysis",
                          sample=cfg.analysis_sample, seed=cfg.seed)  # fmt: skip
    console.print("\n".join(summary_lines(result)))
    return [str(out / "em.png"), str(out / "analysis" / "pos.png"),
            str(out / "analysis" / "freq.png")]  # fmt: skip

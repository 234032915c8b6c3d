"""`maskpt report RUNS...`: the paper's Tables 1-3 from fine-tuning runs.

Rows are pre-training checkpoints (policies), columns are tasks; a cell is
the test metric x100 as mean ± std over seeds at the setting (lr, batch size)
with the most seeds and then the best mean dev score — after a staged sweep
that is the chosen setting. Per column the best mean is **bold**, and rows
not significantly worse than it are underlined: a two-sided paired t-test
over the seeds both have gives p > 0.1 (identical scores count as p = 1;
fewer than 2 shared seeds gives no test and no mark). A column whose best
mean is shared by several rows (e.g. all zeros) has no winner: no bold and
no underline.

Runs are found as `metrics.json` files under the given folders, laid out as
`<checkpoint>/<task>/<run>/metrics.json` (what `maskpt sweep` writes).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from maskpt.core.errors import UserError
from train.tasks import TASKS

TASK_ORDER = list(TASKS)  # the paper's order (Table 1, then 2 and 3)


def collect(paths) -> list[dict]:
    runs = []
    for root in map(Path, paths):
        files = [root] if root.name == "metrics.json" else sorted(root.rglob("metrics.json"))
        for f in files:
            try:
                m = json.loads(f.read_text())
            except json.JSONDecodeError as exc:
                raise UserError(f"{f}: not valid JSON ({exc})") from exc
            for key in ("task", "dev", "test", "seed", "lr", "batch_size"):
                if key not in m:
                    raise UserError(f"{f}: field {key!r} missing")
            if f.parent.parent.name == m["task"]:
                m["checkpoint"] = f.parent.parent.parent.name
            else:
                m.setdefault("checkpoint", Path(str(m.get("model", "?"))).name)
            m["path"] = str(f.parent)
            runs.append(m)
    if not runs:
        raise UserError(f"no metrics.json under {', '.join(map(str, paths))}")
    return runs


def paired_p(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Two-sided paired t-test p-value over shared seeds (None if < 2)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    d = np.array([a[s] - b[s] for s in seeds])
    if np.allclose(d, 0):
        return 1.0
    if np.allclose(d, d[0]):
        return 0.0
    from scipy import stats

    return float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)


def select(runs: list[dict]) -> dict[tuple[str, str], dict[int, float]]:
    """Per (checkpoint, task): seed -> test score at the chosen setting."""
    groups: dict = defaultdict(lambda: defaultdict(dict))
    for r in runs:
        groups[(r["checkpoint"], r["task"])][(r["lr"], r["batch_size"])][r["seed"]] = r
    chosen = {}
    for key, settings in groups.items():
        best = max(
            settings.values(),
            key=lambda by_seed: (len(by_seed), np.mean([r["dev"] for r in by_seed.values()])),
        )
        chosen[key] = {s: 100.0 * r["test"] for s, r in best.items()}
    return chosen


def build(runs: list[dict], alpha: float = 0.1) -> dict:
    chosen = select(runs)
    checkpoints = sorted({c for c, _ in chosen})
    tasks = sorted({t for _, t in chosen}, key=lambda t: (TASK_ORDER + [t]).index(t))
    cells: dict = {}
    for task in tasks:
        rows = {c: chosen[(c, task)] for c in checkpoints if (c, task) in chosen}
        means = {c: float(np.mean(list(v.values()))) for c, v in rows.items()}
        top = max(means.values())
        tops = [c for c, m in means.items() if np.isclose(m, top)]
        # a tie at the top has no winner: nothing bold, nothing compared with it
        best = tops[0] if len(tops) == 1 else None
        for c, v in rows.items():
            vals = list(v.values())
            p = None if best is None or c == best else paired_p(rows[best], v)
            cells[f"{c}/{task}"] = {
                "checkpoint": c,
                "task": task,
                "mean": means[c],
                "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                "seeds": sorted(v),
                "scores": [v[s] for s in sorted(v)],
                "best": c == best,
                "tied_top": best is None and c in tops,
                "p_vs_best": p,
                "not_significantly_worse": c != best and p is not None and p > alpha,
            }
    return {"checkpoints": checkpoints, "tasks": tasks, "alpha": alpha, "cells": cells}


def markdown(table: dict) -> str:
    head = "| checkpoint | " + " | ".join(table["tasks"]) + " |"
    lines = [head, "|---" * (len(table["tasks"]) + 1) + "|"]
    for c in table["checkpoints"]:
        row = [c]
        for t in table["tasks"]:
            cell = table["cells"].get(f"{c}/{t}")
            if cell is None:
                row.append("–")
                continue
            text = f"{cell['mean']:.1f} ± {cell['std']:.1f}"
            if cell["best"]:
                text = f"**{text}**"
            elif cell["not_significantly_worse"]:
                text = f"<u>{text}</u>"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        f"Test metric x100, mean ± std over seeds. **Bold**: best; <u>underlined</u>: not "
        f"significantly worse than the best (paired t-test, p > {table['alpha']}); a column "
        "whose best mean is shared by several rows has neither."
    )
    return "\n".join(lines) + "\n"


def write(table: dict, out: Path, preface: str = "") -> None:
    """report.md (`preface`, if any, above the table) and report.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text((preface.rstrip() + "\n\n" if preface else "") + markdown(table))
    (out / "report.json").write_text(json.dumps(table, indent=2) + "\n")

"""The report's table, paired t-test and marking on constructed numbers."""

from __future__ import annotations

import json
import math

import pytest

from maskpt.core.errors import UserError
from train.report import build, collect, markdown, paired_p


def _write(root, checkpoint, task, seed, test, dev=0.5, lr=1e-5, bs=32):
    folder = root / checkpoint / task / f"lr{lr:g}_bs{bs}_seed{seed}"
    folder.mkdir(parents=True)
    m = {"task": task, "dev": dev, "test": test, "seed": seed, "lr": lr, "batch_size": bs}
    (folder / "metrics.json").write_text(json.dumps(m))


def test_paired_p_matches_the_closed_form_for_two_degrees_of_freedom():
    a, b = {0: 50.0, 1: 52.0, 2: 54.0}, {0: 49.0, 1: 51.5, 2: 53.8}
    d = [1.0, 0.5, 0.2]
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    t = mean / (sd / math.sqrt(3))
    assert paired_p(a, b) == pytest.approx(1 - t / math.sqrt(t * t + 2))  # Student t, df = 2
    assert paired_p(a, a) == 1.0
    assert paired_p({0: 1.0}, {0: 2.0}) is None
    assert paired_p(a, {1: 52.0, 2: 54.0, 7: 1.0}) == 1.0  # pairs by seed: 1 and 2 only
    assert paired_p(a, {2: 50.0, 7: 1.0}) is None  # one shared seed
    assert paired_p(a, {0: 40.0, 1: 42.0, 2: 44.0}) == 0.0  # constant gap


def test_table_bold_underline_and_mean_std(tmp_path):
    scores = {"A": [0.50, 0.52, 0.54], "B": [0.49, 0.515, 0.538], "C": [0.30, 0.31, 0.32]}
    for ck, vals in scores.items():
        for seed, v in enumerate(vals):
            _write(tmp_path, ck, "nq", seed, v)
    # a worse setting of A with more dev but one seed must not be chosen over the 3-seed one
    _write(tmp_path, "A", "nq", 0, 0.99, dev=0.99, lr=3e-5)
    table = build(collect([tmp_path]))
    a, b, c = (table["cells"][f"{k}/nq"] for k in "ABC")
    assert a["best"] and a["mean"] == pytest.approx(52.0) and a["std"] == pytest.approx(2.0)
    assert b["not_significantly_worse"] and 0.1 < b["p_vs_best"] < 0.2
    assert not c["not_significantly_worse"] and c["p_vs_best"] < 0.01
    md = markdown(table)
    assert "**52.0 ± 2.0**" in md and "<u>51.4 ± 2.4</u>" in md and "| C | 31.0 ± 1.0 |" in md


def test_a_tie_at_the_top_marks_no_winner(tmp_path):
    """All-zero columns (a too-short run) or equal best means: nothing bold, nothing
    underlined as "not worse than the best"."""
    for ck, vals in {"A": [0.0, 0.0], "B": [0.0, 0.0], "C": [0.0, 0.0]}.items():
        for seed, v in enumerate(vals):
            _write(tmp_path, ck, "nq", seed, v)
    for ck, vals in {"A": [0.4, 0.6], "B": [0.6, 0.4], "C": [0.1, 0.2]}.items():
        for seed, v in enumerate(vals):
            _write(tmp_path, ck, "wq", seed, v)
    table = build(collect([tmp_path]))
    cells = table["cells"].values()
    assert not any(c["best"] or c["not_significantly_worse"] for c in cells)
    assert {c["checkpoint"] for c in cells if c["tied_top"] and c["task"] == "wq"} == {"A", "B"}
    md = markdown(table)
    assert "**" not in md.split("\n\n")[0] and "<u>" not in md.split("\n\n")[0]


def test_columns_follow_the_paper_and_missing_cells_show(tmp_path):
    _write(tmp_path, "A", "wq", 0, 0.1)
    _write(tmp_path, "A", "nq", 0, 0.2)
    _write(tmp_path, "B", "nq", 0, 0.3)
    table = build(collect([tmp_path]))
    assert table["tasks"] == ["nq", "wq"]
    assert "| B | **30.0 ± 0.0** | – |" in markdown(table)


def test_bad_metrics_file_is_named(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.json").write_text('{"task": "nq"}')
    with pytest.raises(UserError, match="x/metrics.json: field 'dev' missing"):
        collect([tmp_path])
    with pytest.raises(UserError, match="no metrics.json"):
        collect([tmp_path / "x" / "nothing"])

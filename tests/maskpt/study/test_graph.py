"""The stage graph: order, checks, dependents; the ledger's states."""

from __future__ import annotations

import json
import time

import pytest

from maskpt.study.graph import HEARTBEAT_S, Graph, Ledger, Stage


def st(sid, *deps):
    return Stage(sid, "report", ("python", "-c", "pass"), deps=deps)


def test_order_puts_every_stage_after_what_it_needs():
    g = Graph([st("c", "b"), st("a"), st("b", "a"), st("d", "a")])
    pos = {s: i for i, s in enumerate(g.order)}
    assert sorted(g.order) == ["a", "b", "c", "d"]
    assert pos["a"] < pos["b"] < pos["c"] and pos["a"] < pos["d"]
    assert g.dependents("a") == {"b", "c", "d"}
    assert g.dependents("b") == {"c"}


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([st("a"), st("a")], "stage a is defined twice"),
        ([st("a", "x")], "stage a needs x, which is not a stage"),
        ([st("a", "b"), st("b", "a")], "depend on each other"),
    ],
)
def test_bad_graphs_are_refused(stages, message):
    with pytest.raises(ValueError, match=message):
        Graph(stages)


def test_ledger_states(tmp_path):
    ledger = Ledger(tmp_path)
    assert ledger.state("s") == "not started"
    ledger.write("s", "failed.json", {"error": "boom"})
    assert ledger.state("s") == "failed"
    ledger.write("s", "running.json", {"host": "h"})
    ledger.beat("study")
    assert ledger.state("s") == "running"
    beat = json.loads((ledger.root / "driver.json").read_text())
    beat["at"] = time.time() - 4 * HEARTBEAT_S  # a driver that stopped beating
    (ledger.root / "driver.json").write_text(json.dumps(beat))
    assert ledger.state("s") == "interrupted"
    ledger.write("s", "done.json", {})
    assert ledger.state("s") == "done"
    # handed to Ray, not started yet: queued while its driver lives, else nothing
    ledger.write("q", "queued.json", {"since": time.time()})
    assert ledger.state("q") == "not started"  # the driver above stopped beating
    ledger.beat("study")
    assert ledger.state("q") == "queued"

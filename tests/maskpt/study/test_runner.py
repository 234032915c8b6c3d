"""Running a study's stages: each once, in order, failures isolated and
retried, done stages skipped on rerun, the same here and on Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from maskpt.core.errors import UserError
from maskpt.study.graph import Graph, Ledger, Stage
from maskpt.study.runner import Runner, command
from maskpt.study.status import render, stage_rows

pytestmark = pytest.mark.timeout(300)


def py(code: str) -> tuple[str, ...]:
    return ("python", "-c", textwrap.dedent(code))


def counting(out: Path, name: str, then: str = "") -> tuple[str, ...]:
    """A stage that appends a line to OUT/<name>.runs each time it starts."""
    return py(f"""
        import pathlib, sys
        runs = pathlib.Path({str(out)!r}) / "{name}.runs"
        with runs.open("a") as f:
            f.write("x\\n")
        n = len(runs.read_text().splitlines())
        {then}
    """)


def graph(out: Path) -> Graph:
    fail = 'sys.exit("maskpt thing: error: the input is bad")'
    flaky = 'sys.exit("first attempt fails") if n == 1 else None'
    return Graph(
        [
            Stage("a", "preprocess", counting(out, "a")),
            Stage("b", "pretrain", counting(out, "b"), deps=("a",), cost={"gpu_hours": 2.0}),
            Stage("c", "preprocess", counting(out, "c", fail)),
            Stage("d", "sweep", counting(out, "d"), deps=("c",), cost={"gpu_hours": 3.0}),
            Stage("e", "policy", counting(out, "e", flaky)),
            Stage("f", "report", counting(out, "f"), deps=("b", "d", "e")),
        ]
    )


def runs(out: Path, name: str) -> int:
    path = out / f"{name}.runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def check_first_run(out: Path, summary: dict) -> None:
    assert summary["failed"] == {"c": "maskpt thing: error: the input is bad"}
    assert sorted(summary["waiting"]) == ["d", "f"]
    # everything that does not need c ran, once; e was retried once
    assert [runs(out, s) for s in "abcdef"] == [1, 1, 2, 0, 2, 0]
    ledger = Ledger(out)
    assert [ledger.state(s) for s in "abce"] == ["done", "done", "failed", "done"]
    assert ledger.folder("e").joinpath("log.txt").read_text().count("=== ") == 2
    name, rows = stage_rows(out)
    by_id = {r["id"]: r for r in rows}
    assert by_id["c"]["state"] == "failed"
    assert by_id["c"]["detail"].startswith("maskpt thing: error: the input is bad")
    assert by_id["d"]["detail"] == "blocked: c failed" and by_id["d"]["state"] == "waiting"
    assert by_id["f"]["detail"] == "waits on d" or by_id["f"]["detail"].startswith("waits on")
    table = render(name, rows)
    assert "3 done" in table and "1 failed" in table and "about 3.0 GPU-hours" in table


def test_failures_are_isolated_retried_and_resumed(tmp_path):
    out = tmp_path / "study"
    summary = Runner(graph(out), str(out), "t", retries=1, log=lambda m: None).run_here()
    check_first_run(out, summary)
    # the input fixed, a rerun runs only what is not done
    (out / "c.runs").unlink()
    g = Graph(
        [
            s if s.id != "c" else Stage("c", "preprocess", counting(out, "c"))
            for s in graph(out).stages.values()
        ]
    )
    again = Runner(g, str(out), "t", retries=1, log=lambda m: None)
    assert sorted(again.skipped) == ["a", "b", "e"]
    summary = again.run_here()
    assert summary["failed"] == {} and summary["waiting"] == []
    assert [runs(out, s) for s in "abcdef"] == [1, 1, 1, 1, 2, 1]
    assert not (out / "_study" / "driver.json").exists()


def test_on_ray_the_same(tmp_path, ray_local):
    out = tmp_path / "study"
    summary = Runner(graph(out), str(out), "t", retries=1, log=lambda m: None).run_on_ray()
    check_first_run(out, summary)
    # each stage's ledger names the Ray node it ran on, and `status` shows it
    import ray

    nodes = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    done = Ledger(out).read("a", "done.json")
    assert done["node"] in nodes
    row = next(r for r in stage_rows(out)[1] if r["id"] == "a")
    assert done["node"] in row["where"] and done["host"] in row["where"]


def test_a_kinds_limit_keeps_its_stages_one_at_a_time_on_ray(tmp_path, ray_local):
    """Preprocessing drivers each size their actors to the cluster: run one at a time
    (`resources.preprocess_parallel`) while stages of other kinds still overlap them."""
    out = tmp_path / "study"
    nap = py("import time; time.sleep(1.5)")
    stages = [Stage(f"p{i}", "preprocess", nap, cpus=0) for i in range(3)]
    stages += [Stage(f"q{i}", "policy", nap, cpus=0) for i in range(2)]
    limits = {"preprocess": 1}
    summary = Runner(
        Graph(stages), str(out), "t", 0, log=lambda m: None, limits=limits
    ).run_on_ray()
    assert summary["failed"] == {} and summary["waiting"] == []
    ledger = Ledger(out)
    span = {s.id: ledger.read(s.id, "done.json") for s in stages}
    span = {k: (v["started"], v["finished"]) for k, v in span.items()}

    def overlap(a: str, b: str) -> bool:
        return span[a][0] < span[b][1] and span[b][0] < span[a][1]

    assert not any(overlap(a, b) for a, b in (("p0", "p1"), ("p0", "p2"), ("p1", "p2")))
    assert overlap("q0", "q1")  # no limit: together


def test_a_stage_no_node_can_hold(tmp_path, ray_local):
    big = Graph([Stage("p", "pretrain", ("python", "-c", "pass"), cpus=64, gpus=8)])
    with pytest.raises(UserError, match="stage p asks for 64 CPUs and 8 GPUs on one node"):
        Runner(big, str(tmp_path), "t", retries=0, log=lambda m: None).run_on_ray(fixed=True)
    said: list[str] = []
    Runner(big, str(tmp_path), "t", retries=0, log=said.append).check_fits(fixed=False)
    assert said[0].startswith("warning: stage p asks for") and "waits until" in said[0]


def test_resume_flag_only_when_there_is_something_to_resume(tmp_path):
    s = Stage(
        "p",
        "pretrain",
        ("python", "-m", "x", "--config", "{config}"),
        resume=(str(tmp_path / "latest"), "--resume"),
    )
    assert command(s, tmp_path / "c.yaml") == [
        sys.executable,
        "-m",
        "x",
        "--config",
        str(tmp_path / "c.yaml"),
    ]
    (tmp_path / "latest").write_text("")
    assert command(s, tmp_path / "c.yaml")[-1] == "--resume"


def test_killed_driver_leaves_an_interrupted_stage_that_a_rerun_finishes(tmp_path):
    out = tmp_path / "study"
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent("""
        import pathlib, sys
        from maskpt.study.graph import Graph, Stage
        from maskpt.study.runner import Runner
        out, sleep = sys.argv[1], sys.argv[2]
        code = ("import pathlib, time; p = pathlib.Path(%r) / 'slow.runs'; "
                "p.write_text((p.read_text() if p.exists() else '') + 'x'); time.sleep(%s)")
        stages = [Stage("slow", "pretrain", ("python", "-c", code % (out, sleep))),
                  Stage("after", "report", ("python", "-c", "pass"), deps=("slow",))]
        Runner(Graph(stages), out, "t", retries=0, log=print).run_here()
    """)
    )
    driver = subprocess.Popen([sys.executable, str(script), str(out), "60"])
    runs_file = out / "slow.runs"
    deadline = time.time() + 60
    while not runs_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert runs_file.exists()
    _, rows = stage_rows(out)
    assert rows[0]["state"] == "running" and rows[1]["detail"] == "waits on slow"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    beat = json.loads((out / "_study" / "driver.json").read_text())
    beat["at"] -= 60  # as it reads once the heartbeat is 30 s old
    (out / "_study" / "driver.json").write_text(json.dumps(beat))
    _, rows = stage_rows(out)
    assert rows[0]["state"] == "interrupted"
    subprocess.run([sys.executable, str(script), str(out), "0"], check=True)
    _, rows = stage_rows(out)
    assert [r["state"] for r in rows] == ["done", "done"]
    assert runs_file.read_text() == "xx"


def test_a_running_stage_shows_its_own_progress_bar(tmp_path):
    """`status` (and the study's bar) show the count of the last progress bar a running
    stage's command drew in its log, whatever came before it."""
    from maskpt.study.runner import write_plan

    out = tmp_path / "study"
    write_plan(Graph([Stage("pretrain/a/seed0", "pretrain", ("python",))]), str(out), "t")
    ledger = Ledger(out)
    ledger.write("pretrain/a/seed0", "running.json", {"host": "h", "started": time.time()})
    ledger.beat("t")
    log = ledger.folder("pretrain/a/seed0") / "log.txt"
    log.write_text(
        "=== start\npreprocess x:  100%|##########| 32/32 [00:01<00:00]\n"
        "pretrain:   5%|5         | 1/20 [00:00<00:10, loss=5.9]\r"
        "pretrain:  45%|####5     | 9/20 [00:01<00:01, loss=5.0]\r"
    )
    (row,) = stage_rows(out)[1]
    assert row["state"] == "running" and row["detail"] == "pretrain 9/20 (45%)"
    log.write_text("no bar here\n")
    assert stage_rows(out)[1][0]["detail"] == ""


def test_the_bar_names_running_stages_with_their_counts_and_counts_the_queued(tmp_path):
    out = tmp_path / "study"
    nap = ("python", "-c", "pass")
    g = Graph([Stage("a", "pretrain", nap), Stage("b", "sweep", nap), Stage("c", "sweep", nap)])
    runner = Runner(g, str(out), "t", 0, log=lambda m: None)
    ledger = runner.ledger
    ledger.beat("t")
    ledger.write("a", "running.json", {"host": "h", "started": time.time()})
    (ledger.folder("a") / "log.txt").write_text("pretrain:  45%|####5     | 9/20 [00:01<00:01]\r")
    for sid in "bc":
        ledger.write(sid, "queued.json", {"since": time.time()})
    runner.running.update("abc")
    runner.refresh()
    assert runner.bar.postfix == "a pretrain 9/20 (45%) (+2 queued)"

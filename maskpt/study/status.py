"""`maskpt study status OUT`: each stage of a study with its state, where it
runs or ran, for how long, and why it failed or what it waits on; then what
is left, in stages and in GPU-hours by the measured throughputs. Read from
OUT/_study (plan.json and the ledger), so it works while the study runs,
from any node that sees OUT, and after it stopped."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

from maskpt.core.errors import UserError
from maskpt.study.graph import Ledger


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


_BAR = re.compile(r"(?:^|[\r\n])([^\r\n|]*?):?\s*(\d+)%\|[^|\r\n]*\|\s*(\d+)/(\d+)")
"""A tqdm line: `desc:  45%|####      | 9/20 [...]`."""


def log_tail(log: Path, size: int) -> str | None:
    """The last `size` bytes of a stage's log as text; None if there is no log."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return None


def log_progress(log: Path) -> str:
    """The last progress bar a stage's command drew in its log, as `desc 9/20 (45%)`;
    empty when there is none. Reads the log's last 16 kB."""
    bars = _BAR.findall(log_tail(log, 16384) or "")
    if not bars:
        return ""
    desc, percent, done, total = bars[-1]
    desc = desc.strip()
    return f"{desc + ' ' if desc else ''}{done}/{total} ({percent}%)"


def _where(record: dict) -> str:
    """A ledger record's host, with its Ray node's address when it ran as a Ray task
    (several nodes can share a host name)."""
    host, node = record.get("host", ""), record.get("node", "")
    return f"{host} ({node})" if node and node != host else host


def stage_rows(out: str | Path) -> tuple[str, list[dict]]:
    """(study name, one dict per stage: id, kind, state, where, elapsed, detail, gpu_hours,
    gpus)."""
    path = Path(out) / "_study" / "plan.json"
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no study here (maskpt study writes it when it starts)") from None
    ledger = Ledger(out)
    now = time.time()
    states = {s["id"]: ledger.state(s["id"]) for s in plan["stages"]}
    rows = []
    for s in plan["stages"]:
        sid, state = s["id"], states[s["id"]]
        where = elapsed = detail = ""
        if state == "done":
            done = ledger.read(sid, "done.json") or {}
            where, elapsed = _where(done), _elapsed(done.get("seconds", 0))
        elif state in ("running", "interrupted"):
            run = ledger.read(sid, "running.json") or {}
            where, elapsed = _where(run), _elapsed(now - run.get("started", now))
            if state == "interrupted":
                detail = "its driver stopped: rerun the study to resume it"
            else:
                detail = log_progress(ledger.folder(sid) / "log.txt")
        elif state == "queued":
            since = (ledger.read(sid, "queued.json") or {}).get("since", now)
            elapsed = _elapsed(now - since)
            detail = "handed to Ray: waits for a node with its CPUs/GPUs free"
        elif state == "failed":
            failed = ledger.read(sid, "failed.json") or {}
            where, detail = _where(failed), failed.get("error", "")
            detail += f" (log: {failed.get('log', ledger.folder(sid) / 'log.txt')})"
        else:
            blocked = [d for d in s["deps"] if states[d] == "failed"]
            waits = [d for d in s["deps"] if states[d] != "done"]
            if blocked:
                detail = f"blocked: {blocked[0]} failed"
            elif waits:
                more = f" (+{len(waits) - 1} more)" if len(waits) > 1 else ""
                detail = f"waits on {waits[0]}{more}"
            state = "waiting" if waits else "ready"
        rows.append(
            {
                "id": sid,
                "kind": s["kind"],
                "state": state,
                "where": where,
                "elapsed": elapsed,
                "detail": detail,
                "gpu_hours": s["cost"].get("gpu_hours"),
                "gpus": s.get("gpus", 0.0),
            }
        )
    return plan["study"], rows


def render(name: str, rows: list[dict]) -> str:
    """The status table as Markdown (also the top of the study's report)."""
    counts = Counter(r["state"] for r in rows)
    lines = [
        f"## Study {name}: "
        + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        + f" of {len(rows)} stages",
        "",
        "| stage | state | where | elapsed | GPU-h (est.) | detail |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        hours = "" if r["gpu_hours"] is None else f"{r['gpu_hours']:.1f}"
        detail = r["detail"].replace("|", "\\|")
        lines.append(
            f"| {r['id']} | {r['state']} | {r['where']} | {r['elapsed']} | {hours} | {detail} |"
        )
    left = [r for r in rows if r["state"] != "done"]
    known = [r["gpu_hours"] for r in left if r["gpu_hours"] is not None]
    unknown = sum(1 for r in left if r["gpu_hours"] is None and r["gpus"] > 0)
    tail = f"Left: {len(left)} stages, about {sum(known):.1f} GPU-hours by the measured throughputs"
    if unknown:
        tail += f" (+{unknown} GPU stages with no measured speed)"
    lines += ["", tail + "."]
    return "\n".join(lines) + "\n"

"""Pre-training checkpoints: DeepSpeed's own, plus what makes them safe to
resume from.

    OUTPUT/checkpoints/step00000400/      DeepSpeed's files (all ranks save)
        maskpt-complete.rank<r>.json      written by each rank after the save:
                                          the step, the data record, every file
                                          in the folder with its size, and
                                          the sha256 of this rank's share

A checkpoint is intact when every rank's completion file is there and every
file it lists has its size: a save cut short (a full disk, a kill) never
counts. The completion files also hold each file's sha256 (the ranks share
the hashing); a resume and `maskpt export` check them too, so a file
corrupted in place at the same size is passed over like a torn one. `--resume` loads the newest intact checkpoint, saying so when it
passes over a torn one; if loading it still fails, the one before.

The data record says what the stream position means: each shard folder's
index checksum and weight, seed, shuffling, global and micro batch, world
size. Resuming with a different record is refused by name (unless the user
passes --allow-data-change). `keep_last` prunes older checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from maskpt.core.errors import UserError
from maskpt.core.io import sha256_file, write_json_atomic

MARK = "maskpt-complete.rank{rank}.json"


def tags(ckpt_dir: Path) -> list[str]:
    """Checkpoint folders, newest first."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(
        (p.name for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step")),
        reverse=True,
    )


def mark_complete(
    ckpt_dir: Path, tag: str, rank: int, step: int, data: dict, world: int = 1
) -> None:
    """Record, after the save, the files this rank sees and their sizes, and
    the sha256 of its share of them (file i when i % world == rank), so the
    ranks hash the checkpoint once between them."""

    folder = ckpt_dir / tag
    # every rank must list the same files (the hashing is split by position): not the
    # completion records, nor their temporary files, which other ranks write meanwhile
    paths = [
        p for p in sorted(folder.rglob("*")) if p.is_file() and "maskpt-complete" not in p.name
    ]
    files = {str(p.relative_to(folder)): p.stat().st_size for p in paths}
    hashes = {
        str(p.relative_to(folder)): sha256_file(p) for i, p in enumerate(paths) if i % world == rank
    }
    write_json_atomic(
        folder / MARK.format(rank=rank),
        {"step": step, "data": data, "files": files, "sha256": hashes},
    )


def intact(ckpt_dir: Path, tag: str, rank: int, content: bool = False) -> str:
    """Why this rank cannot resume from `tag` ("" when it can): its save did not
    finish, or a file is missing or of another size; with `content`, also a
    file (of this rank's share) whose sha256 differs from the one recorded
    (corrupted in place at the same size)."""

    folder = ckpt_dir / tag
    try:
        mark = json.loads((folder / MARK.format(rank=rank)).read_text())
    except FileNotFoundError:
        return "its save did not finish"
    except json.JSONDecodeError:
        return "its completion record is torn"
    for name, size in mark["files"].items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} when saved"
    if content:
        for name, digest in mark.get("sha256", {}).items():
            if sha256_file(folder / name) != digest:
                return f"{name} differs from what was saved (sha256; corrupted in place)"
    return ""


def intact_on_every_rank(ckpt_dir: Path, tag: str) -> str:
    """`intact` with content for every rank that saved (a one-process reader
    such as `maskpt export` checks all the shares)."""
    marks = sorted((ckpt_dir / tag).glob(MARK.format(rank="*")))
    if not marks:
        return "its save did not finish"
    for mark in marks:
        why = intact(ckpt_dir, tag, int(mark.stem.rsplit("rank", 1)[1]), content=True)
        if why:
            return why
    return ""


def data_difference(saved: dict, now: dict) -> list[str]:
    """Lines naming what differs between the saved data record and this run's."""
    keys = sorted(saved.keys() | now.keys())
    return [
        f"  {k}: checkpoint {json.dumps(saved.get(k))}, this run {json.dumps(now.get(k))}"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


def check_data(saved: dict, now: dict, where: str, allow: bool) -> None:
    diff = data_difference(saved, now)
    if diff and not allow:
        raise UserError(
            f"{where} was saved with other data, so its stream position means other examples:\n"
            + "\n".join(diff)
            + "\nResume with the same data and batch layout, or pass --allow-data-change if you "
            "mean to continue on this data anyway."
        )


def prune(ckpt_dir: Path, keep_last: int, rank: int) -> None:
    """Remove all but the newest `keep_last` intact checkpoints (and torn ones
    older than the newest intact)."""
    if keep_last < 1:
        return
    found = tags(ckpt_dir)
    good = [t for t in found if not intact(ckpt_dir, t, rank)]
    if not good:
        return
    keep = set(good[:keep_last])
    for t in found:
        if t not in keep and t < good[0]:
            shutil.rmtree(ckpt_dir / t, ignore_errors=True)


def prune_allowed(rank: int) -> bool:
    """One process per node prunes (every node when their disks are separate)."""
    return int(os.environ.get("LOCAL_RANK") or rank) == 0

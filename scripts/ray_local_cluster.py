"""Bring ray_local.yaml up on this machine, run commands on it the README's
way, bring it down.

    python scripts/ray_local_cluster.py --work DIR [--key KEY] CMD [CMD ...]

DIR/ray_local.yaml is the repository's ray_local.yaml with four changes for
one machine that is already set up:

- head_ip 127.0.0.1, no other machines, ssh_user the current user, KEY
  (default ~/.ssh/maskpt_local; scripts/local_sshd.sh makes one);
- the project synced to DIR/maskpt instead of ~/maskpt;
- setup_commands replaced by a check that the Python running this script has
  maskpt and the client's Ray (installing the project again into it would
  change the environment the tests run in);
- every command run with that Python's bin folder first on PATH (a login
  shell over SSH starts with the system's PATH).

The start commands are the file's own. Then `ray up -y`, `ray exec` of each
CMD in order (with the same PATH; stopping at the first that fails), and
`ray down -y` whatever happened. `ray down` runs a bare `ray stop` on the
head, which that login shell cannot find here, so the script then runs
`ray stop` itself (the head is this machine). Exit status: the failing
command's, else 0. `ray stop` stops every Ray on this machine: run this
where no other Ray is needed meanwhile.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import subprocess
import sys
from pathlib import Path

import ray
import yaml

REPO = Path(__file__).resolve().parent.parent


def venv_path() -> str:
    """A shell prefix that puts this Python's bin folder first on PATH."""
    return f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH && "


def local_config(work: Path, key: Path) -> Path:
    """Write DIR/ray_local.yaml (see the module docstring); return its path."""
    cfg = yaml.safe_load((REPO / "ray_local.yaml").read_text())
    env = venv_path()
    cfg["cluster_name"] = f"maskpt-local-{os.getpid()}"
    cfg["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    cfg["auth"] = {"ssh_user": getpass.getuser(), "ssh_private_key": str(key)}
    cfg["file_mounts"] = {str(work / "maskpt"): str(REPO)}
    # no single quotes: Ray wraps each command in them for `bash -c`
    check = f'python -c "import maskpt, ray; print(ray.__version__)" | grep -qx {ray.__version__}'
    cfg["setup_commands"] = [env + check]
    for k in ("head_start_ray_commands", "worker_start_ray_commands"):
        cfg[k] = [env + c for c in cfg[k]]
    out = work / "ray_local.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def ray_cli(*args: str) -> int:
    cmd = [str(Path(sys.executable).parent / "ray"), *args]
    print("$", shlex.join(cmd), flush=True)
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--work", required=True, type=Path, help="folder for the config and sync")
    ap.add_argument("--key", type=Path, default=Path("~/.ssh/maskpt_local").expanduser())
    ap.add_argument("commands", nargs="+", help="shell commands for `ray exec`, in order")
    args = ap.parse_args(argv)
    if not args.key.is_file():
        ap.error(f"no SSH key at {args.key}; run scripts/local_sshd.sh first")
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = str(local_config(args.work.resolve(), args.key.resolve()))
    status = ray_cli("up", "-y", "--no-config-cache", cfg)
    try:
        for c in args.commands if status == 0 else ():
            status = ray_cli("exec", cfg, venv_path() + c)
            if status:
                print(f"failed ({status}): {c}", file=sys.stderr)
                break
    finally:
        down = ray_cli("down", "-y", cfg)
        stop = ray_cli("stop")  # whether or not `ray down` managed: see the docstring
    return status or down or stop


if __name__ == "__main__":
    sys.exit(main())

"""Bring ray_local.yaml up on this machine, run commands on it the README's
way, bring it down.

    python scripts/ray_local_cluster.py --work DIR [--key KEY] [--workers N] CMD [CMD ...]

DIR/ray_local.yaml is the repository's ray_local.yaml with these changes for
one machine that is already set up:

- head_ip 127.0.0.1, ssh_user the current user, KEY (default
  ~/.ssh/maskpt_local; scripts/local_sshd.sh makes one);
- with --workers N, N worker machines that are this one again, reached over
  SSH at other loopback addresses (127.0.0.2, 127.0.0.3, ...): Ray's
  autoscaler on the head starts each as it would a real machine (setup
  commands, then the start commands); each one's `ray start` gets
  `--node-ip-address` its address, and its `ray stop` is left out (on this
  machine it would stop the head). Before the commands, the script waits
  until every worker has joined (at most --join-timeout seconds);
- the project synced to DIR/maskpt instead of ~/maskpt;
- setup_commands replaced by a check that the Python running this script has
  maskpt and the client's Ray (installing the project again into it would
  change the environment the tests run in);
- every command run with that Python's bin folder first on PATH (a login
  shell over SSH starts with the system's PATH).

The start commands are the file's own. The file mounts ~/.ray/auth_token
(Ray's token authentication): the script makes one first if there is none
(`ray get-auth-token --generate`). With workers, `ray up` runs with
RAY_UP_enable_autoscaler_v2=0, as ray_local.yaml says (the v2 autoscaler
counts the head among worker_ips and launches one worker fewer).

Then `ray up -y`, `ray exec` of each CMD in order (with the same PATH;
stopping at the first that fails), and, whatever happened, `ray stop` on the
head through `ray exec` (`ray down` runs a bare `ray stop`, which that login
shell cannot find here; while the head's autoscaler runs, `ray down` waits on
the nodes it keeps relaunching), `ray down -y`, and a last `ray stop` here
(the head is this machine). Exit status: the failing command's, else 0.
`ray stop` stops every Ray on this machine: run this where no other Ray is
needed meanwhile.
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
RAY = str(Path(sys.executable).parent / "ray")  # the client's Ray CLI, beside this Python


def venv_path() -> str:
    """A shell prefix that puts this Python's bin folder first on PATH."""
    return f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH && "


def loopback_ips(n: int) -> list[str]:
    return [f"127.0.0.{2 + i}" for i in range(n)]


def worker_commands(commands: list[str], workers: int) -> list[str]:
    """The file's worker start commands for a worker that is this machine: `ray stop`
    dropped, `--node-ip-address` added to `ray start` (Ray's autoscaler runs them with
    RAY_HEAD_IP set; the worker's own address comes from the loopback address the
    SSH login used: SSH_CONNECTION's third field)."""
    if not workers:
        return commands
    own_ip = "$(set -- $SSH_CONNECTION && echo $3)"
    out = []
    for c in commands:
        if c.strip() == "ray stop":
            continue
        if "ray start" in c:
            c = f"{c} --node-ip-address={own_ip}"
        out.append(c)
    return out


def local_config(work: Path, key: Path, workers: int = 0) -> Path:
    """Write DIR/ray_local.yaml (see the module docstring); return its path."""
    cfg = yaml.safe_load((REPO / "ray_local.yaml").read_text())
    env = venv_path()
    cfg["cluster_name"] = f"maskpt-local-{os.getpid()}"
    cfg["provider"].update(head_ip="127.0.0.1", worker_ips=loopback_ips(workers))
    cfg["auth"] = {"ssh_user": getpass.getuser(), "ssh_private_key": str(key)}
    mounts = dict(cfg["file_mounts"])
    mounts[str(work / "maskpt")] = str(REPO)
    del mounts["~/maskpt"]
    cfg["file_mounts"] = mounts  # the project's folder moved; the auth token as in the file
    # no single quotes: Ray wraps each command in them for `bash -c`
    check = f'python -c "import maskpt, ray; print(ray.__version__)" | grep -qx {ray.__version__}'
    cfg["setup_commands"] = [env + check]
    cfg["worker_start_ray_commands"] = worker_commands(cfg["worker_start_ray_commands"], workers)
    for k in ("head_start_ray_commands", "worker_start_ray_commands"):
        cfg[k] = [env + c for c in cfg[k]]
    out = work / "ray_local.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


# run on the head with `ray exec`: wait until N nodes are alive, at most T seconds
WAIT_NODES = """import sys, time, ray
want, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
ray.init(address="auto", logging_level="ERROR")
while True:
    alive = sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])
    if len(alive) >= want:
        print("nodes joined:", " ".join(alive))
        break
    if time.time() > deadline:
        sys.exit(f"{len(alive)} of {want} nodes joined after {sys.argv[2]} s: {alive}")
    time.sleep(2)
"""


def ray_cli(*args: str, env: dict | None = None) -> int:
    cmd = [RAY, *args]
    print("$", shlex.join(cmd), flush=True)
    return subprocess.call(cmd, env={**os.environ, **(env or {})})


def ensure_token() -> None:
    """~/.ray/auth_token, which the config mounts on every node: made when missing."""
    if not Path("~/.ray/auth_token").expanduser().is_file():
        # not through ray_cli: the command prints the token, which stays out of logs
        subprocess.run([RAY, "get-auth-token", "--generate"], check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--work", required=True, type=Path, help="folder for the config and sync")
    ap.add_argument("--key", type=Path, default=Path("~/.ssh/maskpt_local").expanduser())
    ap.add_argument(
        "--workers", type=int, default=0, help="worker nodes on this machine (127.0.0.2, ...)"
    )
    ap.add_argument(
        "--join-timeout", type=float, default=300, help="seconds to wait for the workers"
    )
    ap.add_argument("commands", nargs="+", help="shell commands for `ray exec`, in order")
    args = ap.parse_args(argv)
    if not args.key.is_file():
        ap.error(f"no SSH key at {args.key}; run scripts/local_sshd.sh first")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg = str(local_config(work, args.key.resolve(), args.workers))
    commands = list(args.commands)
    if args.workers:
        (work / "wait_nodes.py").write_text(WAIT_NODES)
        wait = shlex.join(["python", str(work / "wait_nodes.py"), str(1 + args.workers)])
        commands.insert(0, f"{wait} {args.join_timeout:g}")
    ensure_token()
    v1 = {"RAY_UP_enable_autoscaler_v2": "0"} if args.workers else {}
    status = ray_cli("up", "-y", "--no-config-cache", cfg, env=v1)
    try:
        for c in commands if status == 0 else ():
            status = ray_cli("exec", cfg, venv_path() + c)
            if status:
                print(f"failed ({status}): {c}", file=sys.stderr)
                break
    finally:  # see the docstring
        ray_cli("exec", cfg, venv_path() + "ray stop")
        down = ray_cli("down", "-y", cfg)
        stop = ray_cli("stop")
    return status or down or stop


if __name__ == "__main__":
    sys.exit(main())

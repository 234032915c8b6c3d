#!/usr/bin/env bash
# Make this machine reachable as a Ray `local`-provider node on 127.0.0.1:
# an SSH server and rsync (Debian packages, installed when missing), a key
# for the current user accepted on localhost, sshd running. Idempotent.
# Prints the key's path; tests/test_ray_local_cluster.py runs when
# MASKPT_SSH_KEY names it. Run by .ci/run; by hand: `bash scripts/local_sshd.sh`.
#
# It changes this machine (packages, ~/.ssh/authorized_keys, a running sshd):
# meant for CI machines and throw-away boxes, not a workstation you care about.
set -euo pipefail

KEY=${MASKPT_SSH_KEY:-$HOME/.ssh/maskpt_local}

if ! command -v sshd >/dev/null && [ ! -x /usr/sbin/sshd ] || ! command -v rsync >/dev/null; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssh-server openssh-client rsync >/dev/null
fi

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
[ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N "" -C maskpt-local -f "$KEY"
touch "$HOME/.ssh/authorized_keys" && chmod 600 "$HOME/.ssh/authorized_keys"
grep -qF "$(cut -d' ' -f2 "$KEY.pub")" "$HOME/.ssh/authorized_keys" || cat "$KEY.pub" >>"$HOME/.ssh/authorized_keys"

ssh_ok() {
    ssh -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o ConnectTimeout=5 -o LogLevel=ERROR "$(id -un)@127.0.0.1" true 2>/dev/null
}
if ! ssh_ok; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO mkdir -p /run/sshd
    [ -n "$(ls /etc/ssh/ssh_host_*_key 2>/dev/null)" ] || $SUDO ssh-keygen -A
    $SUDO /usr/sbin/sshd
    for _ in $(seq 20); do ssh_ok && break; sleep 0.5; done
    ssh_ok || { echo "sshd started but ssh -i $KEY $(id -un)@127.0.0.1 fails" >&2; exit 1; }
fi
echo "$KEY"

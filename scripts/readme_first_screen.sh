#!/usr/bin/env bash
# Run the README's first screen as a new user would: a fresh clone of the
# committed HEAD, no venv, the Hugging Face Hub offline (HF_HUB_OFFLINE=1),
# then every command line of the README's first ```bash block, in order, as
# written. Each line's exit status, time and last output lines are printed;
# the first failure stops the run (exit 1).
#
#   bash scripts/readme_first_screen.sh            # as written: `maskpt demo` takes about 2 h
#   bash scripts/readme_first_screen.sh --quick    # `maskpt demo --size tiny`, `pytest -m "not slow"`
#
# --quick changes only those two commands (printed as run). Needs python3.11,
# git and pip's package index; the clone goes to a temporary folder (kept,
# its path printed, for a look at runs/demo afterwards).
set -euo pipefail

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
SRC=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
WORK=$(mktemp -d -t maskpt-readme-XXXXXX)
git clone -q "$SRC" "$WORK/maskpt"
cd "$WORK/maskpt"
echo "fresh clone of $(git rev-parse --short HEAD) in $WORK/maskpt; python3.11 = $(python3.11 --version)"

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset VIRTUAL_ENV PYTHONPATH

# the first ```bash block of the README: its command lines, comments dropped
mapfile -t COMMANDS < <(awk '/^```bash/{n++; next} /^```/{if (n == 1) exit} n == 1' README.md |
    grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$')
[ "${#COMMANDS[@]}" -gt 0 ] || { echo "no commands found in README.md's first bash block" >&2; exit 1; }

# one shell for all lines, as a user pasting them would have (the venv stays active)
SCRIPT="$WORK/commands.sh"
: >"$SCRIPT"
i=0
for cmd in "${COMMANDS[@]}"; do
    i=$((i + 1))
    if [ "$QUICK" = 1 ]; then
        cmd=${cmd/%maskpt demo/maskpt demo --size tiny}
        cmd=${cmd/%python -m pytest/python -m pytest -m \"not slow\"}
    fi
    cat >>"$SCRIPT" <<EOF
echo "=== [$i/${#COMMANDS[@]}] \$ $(printf '%s' "$cmd" | sed 's/["$`\\]/\\&/g')"
start=\$(date +%s)
set +e
( $cmd ) >"$WORK/out-$i.log" 2>&1
rc=\$?
set -e
tail -n 15 "$WORK/out-$i.log"
echo "=== [$i/${#COMMANDS[@]}] exit \$rc after \$(( \$(date +%s) - start )) s (full output: $WORK/out-$i.log)"
[ \$rc = 0 ] || exit 1
EOF
    # a line that activates a venv must leave it active for the next lines
    if [[ "$cmd" == *"bin/activate"* ]]; then
        echo ". .venv/bin/activate" >>"$SCRIPT"
    fi
done
bash -e "$SCRIPT"
echo "all ${#COMMANDS[@]} commands of README.md's first screen succeeded (HF_HUB_OFFLINE=1)"

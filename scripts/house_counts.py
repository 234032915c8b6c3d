"""Counts a newcomer trips on, for the packages (maskpt, policies, preprocess, train):
imports inside functions (all, and of the project's own modules) and formatter
opt-outs (`# fmt: skip`, `# fmt: off`).

    python scripts/house_counts.py [REPO_ROOT]          # this tree
    git worktree add /tmp/old REV && python scripts/house_counts.py /tmp/old
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("maskpt", "policies", "preprocess", "train")


def counts(root: Path) -> dict[str, int]:
    out = {"function-level imports": 0, "of them first-party": 0, "fmt: skip": 0, "fmt: off": 0}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            out["fmt: skip"] += text.count("# fmt: skip")
            out["fmt: off"] += text.count("# fmt: off")
            tree = ast.parse(text, str(path))
            top = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in top:
                    continue
                out["function-level imports"] += 1
                if isinstance(node, ast.ImportFrom):
                    name = node.module or ""
                    own = bool(node.level) or name.split(".")[0] in PACKAGES
                else:
                    own = node.names[0].name.split(".")[0] in PACKAGES
                out["of them first-party"] += own
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    for key, value in counts(root).items():
        print(f"{key}: {value}")

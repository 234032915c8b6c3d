"""train/ reads shard folders only through the shard contract (docs/DESIGN.md, "Shard
folders"): of preprocess/ it imports these modules and no other, anywhere in a file."""

import ast
from pathlib import Path

from tests.helpers import ROOT

CONTRACT = {"preprocess.index", "preprocess.shards", "preprocess.remask", "preprocess.counts"}


def preprocess_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            base = node.module or ""
            names = [base] if base != "preprocess" else [f"preprocess.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n == "preprocess" or n.startswith("preprocess.")}
    return found


def test_train_imports_only_the_shard_contract_of_preprocess():
    files = sorted((ROOT / "train").rglob("*.py"))
    assert len(files) > 20
    used = {f.name: preprocess_imports(f) for f in files}
    outside = {name: sorted(mods - CONTRACT) for name, mods in used.items() if mods - CONTRACT}
    assert outside == {}
    assert {"preprocess.index", "preprocess.shards", "preprocess.remask"} <= set().union(
        *used.values()
    )  # counts.py comes through index.py


def test_the_check_sees_function_level_and_package_imports(tmp_path):
    f = tmp_path / "x.py"
    f.write_text(
        "from preprocess import pipeline\n"
        "def g():\n"
        "    import preprocess.plan\n"
        "    from preprocess.shards import read_table\n"
    )
    assert preprocess_imports(f) == {"preprocess.pipeline", "preprocess.plan", "preprocess.shards"}

"""Write the same shards with another revision of maskpt and with this tree,
and compare them byte for byte: the check that a refactoring left the shard
output unchanged.

    python scripts/compare_shards.py --against e1f0789 [--policies orig_v1 rand_v1 ssm_v1]

Both trees run `preprocess.pipeline.run_preprocess` (without Ray, the same
output as with it) on the bundled paragraphs plus, when `../shared/data` is
there, the real Wikipedia dump sample, with one tokenizer trained here.
Every shard file must have the same bytes, and index.json the same content
apart from `maskpt_version`. Exits 1 on any difference (as it must across a
change of the shard format: 0.1 wrote format 1, 0.2 format 2).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = """
import sys
from preprocess.config import PreprocessConfig
from preprocess.pipeline import run_preprocess
inputs, tok, out, policy = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
run_preprocess(PreprocessConfig(inputs=tuple(inputs), output=out, policy=policy, tokenizer=tok,
               format="both", shard_size=200, docs_per_unit=25, seed=3),
               progress=False, use_ray=False)
"""


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file but the run's _progress/ and index.json, and of
    index.json without the package version."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] != "_progress" and p.name != "index.json":
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    index = json.loads((folder / "index.json").read_text())
    index.pop("maskpt_version", None)
    out["index.json (without maskpt_version)"] = hashlib.sha256(
        json.dumps(index, sort_keys=True).encode()
    ).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--against", required=True, help="git revision to compare with")
    ap.add_argument("--policies", nargs="+", default=["orig_v1", "rand_v1", "ssm_v1"])
    args = ap.parse_args()
    from maskpt.core.resources import bundled_corpus, bundled_texts
    from maskpt.core.tokenizer import train_tokenizer

    shared = Path(os.environ.get("MASKPT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    inputs = [str(bundled_corpus())]
    dump = shared / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
    if dump.exists():
        inputs.append(str(dump))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.against], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        tok = tmp / "tok"
        train_tokenizer(bundled_texts(), tok, vocab_size=4000, min_frequency=1)
        bad = 0
        for policy in args.policies:
            got = {}
            for name, tree in (("old", old), ("new", ROOT)):
                out = tmp / f"{name}-{policy}"
                env = {**os.environ, "PYTHONPATH": str(tree)}
                subprocess.run(
                    [sys.executable, "-c", SNIPPET, ",".join(inputs), str(tok), str(out), policy],
                    cwd=tree,
                    env=env,
                    check=True,
                )
                got[name] = digest(out)
            same = got["old"] == got["new"]
            bad += not same
            print(
                f"{policy}: {len(got['new'])} files, "
                f"{'byte-identical' if same else 'DIFFERENT'} to {args.against}"
            )
            for k in sorted(got["old"].keys() | got["new"].keys()):
                if got["old"].get(k) != got["new"].get(k):
                    print(f"  differs: {k}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

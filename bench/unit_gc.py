"""What `preprocess.units.tune_gc` saves: the same units of a multistream dump
processed (read, clean, segment, mask, write Arrow) in a fresh process with
CPython's default garbage collector settings and with `tune_gc()`,
alternately for `--rounds` rounds, in one run.

    python -m bench.unit_gc [--repeat 2] [--policy orig_v1] [--rounds 3]

Prints each process's CPU seconds and peak RSS, and the median ratio
default / tuned.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, tempfile, time
from maskpt.core.storage import Storage
from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer
from preprocess.plan import plan_units
from preprocess.units import UnitSettings, process_unit, tune_gc
import policies as registry

tok_dir, dump, policy, mode = sys.argv[1:5]
tok = load_tokenizer(tok_dir)
pol = registry.create(policy, TokenizerInfo.from_tokenizer(tok, tok_dir), {})
pol.setup("cpu")
units = list(plan_units((dump,), 25))
if mode == "tuned":
    tune_gc()
out = Storage(tempfile.mkdtemp())
c0 = time.process_time()
for u in units:
    process_unit(u, tok, pol, UnitSettings(0, 512, ("arrow",), 5000), out)
print(json.dumps({"cpu": time.process_time() - c0, "units": len(units),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=2, help="copies of the dump sample")
    ap.add_argument("--policy", default="orig_v1")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from bench.mask_throughput import DEFAULT_DUMP
    from bench.preprocess_scale import multistream_copy, sample_tokenizer

    work = Path(tempfile.mkdtemp(prefix="maskpt-gc-"))
    tok = sample_tokenizer(DEFAULT_DUMP, work / "tok")
    xml, dump = multistream_copy(DEFAULT_DUMP, work, args.repeat, 25)
    print(f"input: {xml.stat().st_size / 1e6:.1f} MB of XML; policy {args.policy}")
    ratios = []
    for k in range(args.rounds):
        cpu = {}
        for mode in ("default", "tuned"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, tok, str(dump), args.policy, mode],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            cpu[mode] = r["cpu"]
            print(
                f"round {k + 1} {mode:8} {r['units']} units {r['cpu']:6.2f} s CPU, "
                f"peak RSS {r['rss_mb']:.0f} MiB"
            )
        ratios.append(cpu["default"] / cpu["tuned"])
    print(
        f"-> tuned GC = {statistics.median(ratios):.2f}x the default's speed, median of "
        f"rounds ({', '.join(f'{x:.2f}' for x in ratios)})"
    )


if __name__ == "__main__":
    main()

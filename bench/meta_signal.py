"""Does the meta-learned policy learn what helps the task? Trains `meta_v1`
on a demo world's policy examples from its general model, for each variant
and seed, and prints the answer probe (`train/meta_probe.py`: p(mask) on
held-out answers / on other content tokens; 1 = blind to answers), the
rows within the budget band, and the gradient norms of the two terms at
step 1.

    python -m bench.meta_signal --demo runs/demo --variants defaults paper --seeds 0 1 2

`--demo` is a `maskpt demo` output folder (its world/, tokenizer/ and
pretrain/general/hf/ are used; `maskpt demo` builds them first). A variant is
a name of VARIANTS (MetaConfig overrides over the defaults); `--set k=v`
adds overrides to every variant. Results go to --out as JSON lines, one per
(variant, seed), as they finish.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Each spelled out in full, so that a result does not change meaning when the defaults do.
_NEW = {
    "budget": "expected",
    "start_at_budget": True,
    "beta": 1.0,
    "beta_scale": "fixed",
    "policy_lr": 1e-3,
    "inner_steps": 1,
}
VARIANTS: dict[str, dict] = {
    "defaults": {},
    # the defaults before issue 25: the paper's difference, inner steps of 1e-4, Eq. 7 on
    # drawn masks, the default start (p ≈ 0.5)
    "old_defaults": {
        "budget": "sampled",
        "start_at_budget": False,
        "outer_loss": "difference",
        "pretrain_lr": 1e-4,
        "finetune_lr": 1e-4,
        "beta": 1.0,
        "policy_lr": 1e-3,
    },
    # the demo's meta settings before issue 25
    "old_demo": {
        "budget": "sampled",
        "start_at_budget": False,
        "beta": 0.01,
        "hidden": 128,
        "max_length": 64,
        "pretrain_lr": 0.05,
        "finetune_lr": 0.05,
        "policy_lr": 3e-3,
        "outer_loss": "after",
        "target_prefix_space": True,
    },
    # the new budget and start, with each outer loss and inner step size
    "difference_1e-4": {
        **_NEW,
        "outer_loss": "difference",
        "pretrain_lr": 1e-4,
        "finetune_lr": 1e-4,
    },
    "difference_0.05": {
        **_NEW,
        "outer_loss": "difference",
        "pretrain_lr": 0.05,
        "finetune_lr": 0.05,
    },
    "difference_0.05_k3": {
        **_NEW,
        "outer_loss": "difference",
        "pretrain_lr": 0.05,
        "finetune_lr": 0.05,
        "inner_steps": 3,
    },
    "difference_ft0.2": {
        **_NEW,
        "outer_loss": "difference",
        "pretrain_lr": 0.05,
        "finetune_lr": 0.2,
    },
    "after_1e-4": {**_NEW, "outer_loss": "after", "pretrain_lr": 1e-4, "finetune_lr": 1e-4},
    "after_0.05": {**_NEW, "outer_loss": "after", "pretrain_lr": 0.05, "finetune_lr": 0.05},
}


def run_one(
    demo: str, variant: str, overrides: dict, seed: int, steps: int, batch: int, out: str
) -> dict:
    import torch

    torch.set_num_threads(1)
    from train.meta_policy import MetaConfig, train

    demo_dir = Path(demo)
    folder = Path(out) / f"{variant}_seed{seed}"
    fields = {**VARIANTS.get(variant, {}), **overrides}
    cfg = MetaConfig(
        examples=str(demo_dir / "world" / "policy_examples.jsonl"),
        model=str(demo_dir / "pretrain" / "general" / "hf"),
        output_dir=str(folder),
        steps=steps,
        batch_size=batch,
        seed=seed,
        log_every=max(1, steps // 10),
        **fields,
    )
    t0 = time.time()
    last = train(cfg, progress=False)
    logs = [json.loads(x) for x in (folder / "train_log.jsonl").read_text().splitlines()]
    first = logs[0]
    keys = (
        "probe_ratio",
        "probe_ratio_frozen",
        "probe_p_answer",
        "probe_p_other",
        "rows_in_budget",
        "rows_in_budget_expected",
        "mask_rate",
        "expected_rate",
        "l_diff",
        "meta_gain",
    )
    return {
        "variant": variant,
        "seed": seed,
        "fields": fields,
        "steps": steps,
        "seconds": round(time.time() - t0, 1),
        "step1_grad_norm_meta": first["grad_norm_meta"],
        "step1_grad_norm_reg": first["grad_norm_reg"],
        "probe_curve": [round(r.get("probe_ratio", float("nan")), 3) for r in logs],
        "gain_curve": [round(r.get("meta_gain", float("nan")), 4) for r in logs],
        **{k: last.get(k) for k in keys},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--demo", required=True, help="a maskpt demo output folder")
    ap.add_argument("--variants", nargs="+", default=["defaults"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--set", nargs="*", default=[], help="k=v MetaConfig overrides, every variant")
    ap.add_argument("--name", default="", help="suffix for the variants' names in the output")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="runs/meta_signal")
    a = ap.parse_args(argv)
    overrides = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v) if v[:1] in "0123456789-[{tfn." else v
    Path(a.out).mkdir(parents=True, exist_ok=True)
    jobs = [(v, s) for v in a.variants for s in a.seeds]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process with torch's threads
    with (
        ProcessPoolExecutor(a.workers, mp_context=spawn) as pool,
        (Path(a.out) / "results.jsonl").open("a") as f,
    ):
        futs = [
            pool.submit(run_one, a.demo, v, overrides, s, a.steps, a.batch, a.out) for v, s in jobs
        ]
        for fut in futs:
            r = fut.result()
            r["variant"] += a.name
            f.write(json.dumps(r) + "\n")
            f.flush()
            print(
                f"{r['variant']:>24} seed {r['seed']}: probe {r['probe_ratio']:.3f} "
                f"(start {r['probe_ratio_frozen']:.3f}), band {r['rows_in_budget']:.2f} / "
                f"expected {r['rows_in_budget_expected']:.2f}, rate {r['mask_rate']:.3f}, "
                f"grad meta/reg at step 1 {r['step1_grad_norm_meta']:.2e}/"
                f"{r['step1_grad_norm_reg']:.2e}, {r['seconds']:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

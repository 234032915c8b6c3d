"""The demo's stages (`maskpt demo`), each skipped on a rerun when its output
is complete. Layout under OUT:

    world/, tokenizer/                       the synthetic world and its BPE
    policies/<row>/, policies/<row>-seed<j>/ learned policies (sup, meta; *_transfer:
                                             learned on some attributes' questions only),
                                             policy training seed 0 and j >= 1
    shards/<row>/, shards/<row>-policy_seed<j>/   each row's policy applied to the corpus
                                             (learned rows: one folder per policy seed;
                                             the analysis reads policy seed 0's)
    pretrain/general/, pretrain/<row>/seed<k>/   train/pretrain.py runs (seed k)
    finetune/<row>/synth/lr…_bs…_seed<r>/    fine-tuning run r: pre-training seed
                                             r // seeds, fine-tuning seed r
Pre-training run k of a learned row uses policy seed k mod policy_seeds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from maskpt.core.tokenizer import train_tokenizer
from train.finetune import FinetuneConfig, finetune

LEARNED = {"sup_v1": "sup", "meta_v1": "meta"}
TRANSFER = "_transfer"


def policy_of(row: str) -> str:
    """`sup_v1_transfer` -> sup_v1."""
    return row.removesuffix(TRANSFER)


class Demo:
    """The stages, sharing the output folder, the config and the console."""

    def __init__(self, cfg, out: Path, console):
        self.cfg, self.out, self.console = cfg, out, console
        self.world = out / "world"
        self.tokenizer = out / "tokenizer"
        self.stage_no = 0
        self.preprocess_on_ray = True
        """False: preprocessing masks in this process (as a study's Ray task does)."""

    def stage(self, title: str) -> None:
        self.stage_no += 1
        self.console.rule(f"[bold]{self.stage_no}/8 {title}")

    def make_world(self) -> None:
        from maskpt.world import generate

        if (self.world / "world.json").exists():
            counts = json.loads((self.world / "world.json").read_text())["counts"]
            self.console.print(f"exists: {self.world}")
        else:
            counts = generate(self.cfg.world, self.world)
        self.console.print(
            f"{counts['corpus_docs']} articles about the people asked about, "
            f"{counts['background_docs']} about background people; QA train/dev/test "
            f"{counts['qa_train']}/{counts['qa_dev']}/{counts['qa_test']}"
        )

    def make_tokenizer(self) -> None:
        if (self.tokenizer / "tokenizer.json").exists():
            self.console.print(f"exists: {self.tokenizer}")
            return
        texts = [
            json.loads(line)["text"]
            for name in ("corpus.jsonl", "background.jsonl")
            for line in (self.world / name).read_text(encoding="utf-8").splitlines()
        ]
        tmp = self.out / ".tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tok = train_tokenizer(texts, tmp, vocab_size=self.cfg.vocab_size, min_frequency=1)
        tmp.rename(self.tokenizer)
        self.console.print(f"a {len(tok)}-token byte-level BPE -> {self.tokenizer}")

    def shards(self, row: str, policy_seed: int = 0) -> Path:
        """The row's shard folder for the policy trained with `policy_seed`."""
        name = row if policy_seed == 0 else f"{row}-policy_seed{policy_seed}"
        return self.out / "shards" / name

    def preprocess(self, policy: str, corpus: Path, folder: Path, checkpoint: str = "") -> dict:
        from preprocess.config import PreprocessConfig
        from preprocess.inspection import verify
        from preprocess.pipeline import run_preprocess

        policy_config = {"checkpoint": checkpoint} if checkpoint else {}
        if policy == "sup_v1":  # one of its top 5 spans: top1 masks the same attribute every time
            policy_config["mode"] = "sample"
        cfg = PreprocessConfig(
            inputs=(str(corpus),),
            output=str(folder),
            policy=policy,
            policy_config=policy_config,
            tokenizer=str(self.tokenizer),
            seed=self.cfg.seed,
            max_length=self.cfg.max_length,
            format="arrow",
            docs_per_unit=200,
            shard_size=5000,
        )
        index = run_preprocess(cfg, progress=True, use_ray=self.preprocess_on_ray)
        problems = verify(folder)
        if problems:
            raise RuntimeError(f"{folder}: shards do not verify: {problems[0]}")
        c = index.counts
        skipped = sum(c.skipped_segments.values()) + sum(c.skipped_documents.values())
        self.console.print(
            f"{policy}: {c.segments_written} examples ({skipped} skipped), mask ratio "
            f"{c.mask_ratio:.1%} -> {folder}"
        )
        return index

    def pretrain(self, name: str, shards: Path, init: str, steps: int, seed: int = 0) -> Path:
        """One run of train/pretrain.py in its own process; returns the exported
        model. `seed` shifts the data order and the per-epoch masks."""
        run = self.out / "pretrain" / name
        hf = run / "hf"
        if (run / "DONE").exists():
            self.console.print(f"{name}: exists ({hf})")
            return hf
        run.mkdir(parents=True, exist_ok=True)
        c = self.cfg
        cfg = {
            "model": {
                "name_or_path": init,
                "tokenizer": str(self.tokenizer),
                "config": {} if init else c.model,
            },
            "seed": c.seed + seed,
            "max_length": c.max_length,
            "global_batch": c.batch,
            "micro_batch": c.batch // 2,
            "total_steps": steps,
            "zero_stage": 1,
            "precision": "fp32",
            "optim": {"lr": c.lr, "warmup_steps": min(c.warmup, steps)},
            "data": {"shards": [str(shards)], "remask": c.remask, "mask_seed": c.seed + seed},
            "output_dir": str(run),
            "save_every": max(100, steps // 4),
            "log_every": max(1, steps // 20),
        }

        path = run / "pretrain.yaml"
        path.write_text(
            f"# Used by: python -m train.pretrain --config {path}  (written by maskpt demo)\n"
            + yaml.safe_dump(cfg, sort_keys=False)
        )
        cmd = [sys.executable, "-m", "train.pretrain", "--config", str(path)]
        if (run / "checkpoints" / "latest").exists():
            cmd.append("--resume")
        self.console.print("$ " + " ".join(cmd))
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise RuntimeError(
                f"pre-training {name} failed (exit {proc.returncode}); its output is above, "
                f"its log in {run / 'log.jsonl'}; rerun the demo to resume it"
            )
        logs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        self.console.print(
            f"{name}: loss {logs[0]['loss']:.3f} (step {logs[0]['step']}) -> "
            f"{logs[-1]['loss']:.3f} (step {logs[-1]['step']})"
        )
        (run / "DONE").write_text("")
        return hf

    def policy_examples(self, row: str) -> str:
        """The QA train split's (c, s, t); a transfer row keeps only the
        questions about the configured attributes."""
        examples = self.world / "policy_examples.jsonl"
        if not row.endswith(TRANSFER):
            return str(examples)
        keep = set(self.cfg.transfer)
        path = self.out / "policies" / "transfer_examples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            x
            for x in examples.read_text().splitlines()
            if json.loads(x)["id"].split("-")[1] in keep
        ]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def policy_folder(self, row: str, seed: int = 0) -> Path:
        """`policies/sup`, `policies/meta_transfer-seed1`, ..."""
        policy = policy_of(row)
        name = LEARNED[policy] + row[len(policy) :] + (f"-seed{seed}" if seed else "")
        return self.out / "policies" / name

    def train_policy(self, row: str, base: Path, seed: int = 0) -> Path:
        """The row's learned policy trained with seed cfg.seed + `seed`."""
        policy = policy_of(row)
        folder = self.policy_folder(row, seed)
        if (folder / "DONE").exists():
            self.console.print(f"{row} (policy seed {seed}): exists ({folder})")
            return folder
        examples = self.policy_examples(row)
        c = self.cfg
        if policy == "sup_v1":
            from train.supervised_policy import SupervisedConfig, train

            s = train(
                SupervisedConfig(
                    examples=examples,
                    model=str(base),
                    output_dir=str(folder),
                    epochs=1000,
                    max_steps=c.policy_steps,
                    lr=1e-3,
                    batch_size=32,
                    hidden=128,
                    max_length=c.max_length,
                    max_span_length=6,
                    seed=c.seed + seed,
                )
            )
            self.console.print(f"{row}: validation top-1 span accuracy {s['val_top1']:.2f}")
        else:
            from train.meta_policy import MetaConfig, train

            # the trainer's defaults (README "The meta-learned policy"; bench/meta_signal.py
            # measures them on this world), only the steps and batch size set
            last = train(
                MetaConfig(
                    examples=examples,
                    model=str(base),
                    output_dir=str(folder),
                    steps=c.meta_steps,
                    batch_size=8,
                    seed=c.seed + seed,
                )
            )
            probe = (
                f", answer probe {last['probe_ratio']:.2f} (start {last['probe_ratio_frozen']:.2f})"
                if "probe_ratio" in last
                else ""
            )
            self.console.print(
                f"{row}: mask rate {last['mask_rate']:.3f}, rows in budget "
                f"{last['rows_in_budget_expected']:.2f} (expected counts){probe}"
            )
        (folder / "DONE").write_text("")
        return folder

    def finetune(self, row: str, model: Path, run_no: int) -> dict:
        c = self.cfg
        run = self.out / "finetune" / row / "synth" / f"lr{c.ft_lr:g}_bs{c.ft_batch}_seed{run_no}"
        if (run / "metrics.json").exists():
            return json.loads((run / "metrics.json").read_text())
        cfg = FinetuneConfig(
            task="synth",
            data_dir=str(self.world / "qa"),
            model=str(model),
            output_dir=str(run),
            seed=run_no,
            lr=c.ft_lr,
            batch_size=c.ft_batch,
            max_steps=c.ft_steps,
            eval_every=max(1, c.ft_steps // 8),
            patience=0,
            warmup_steps=max(1, c.ft_steps // 10),
            label_smoothing=0.0,
            dropout=0.0,
            num_beams=1,
            max_gen_length=8,
            max_source_length=32,
            max_target_length=12,
            target_prefix_space=True,
            report_to=("none",),
            log_every=max(1, c.ft_steps // 8),
        )
        metrics = finetune(cfg)
        self.console.print(
            f"{row} run {run_no}: dev EM {metrics['dev']:.3f}, test EM {metrics['test']:.3f}"
        )
        return metrics

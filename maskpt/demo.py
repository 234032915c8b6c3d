"""`maskpt demo`: the main job on the embedded default.

What exists so far, end to end on CPU: trains a byte-level BPE on the
paragraphs bundled with the package; masks them with every heuristic policy
and prints examples and a statistics table; preprocesses them with each
policy on an embedded local Ray into shard folders (verified); and runs a few
steps of tiny-BART intermediate pre-training with `train/pretrain.py` on the
`orig_v1` shards, exporting the model. Writes `summary.json`,
`masked-<policy>.jsonl`, `shards/<policy>/`, `pretrain.yaml` and `pretrain/`
to the output folder. (Fine-tuning and evaluation come with their issue.)
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

HEURISTIC = ("orig_v1", "rand_v1", "ssm_v1")


def bundled_corpus() -> Path:
    return Path(str(resources.files("maskpt") / "data" / "sample_paragraphs.jsonl"))


PRETRAIN_YAML = """# Used by: python -m train.pretrain --config {out}/pretrain.yaml  (written by maskpt demo)
model:
  name_or_path: ""
  tokenizer: {out}/tokenizer
  config: {{d_model: 128, encoder_layers: 2, decoder_layers: 2, encoder_attention_heads: 4,
           decoder_attention_heads: 4, encoder_ffn_dim: 512, decoder_ffn_dim: 512,
           max_position_embeddings: 80}}
seed: {seed}
max_length: {max_length}
global_batch: 8
micro_batch: 4
total_steps: {steps}
zero_stage: 1
precision: fp32
optim: {{lr: 5.0e-4, warmup_steps: 5}}
data:
  shards: [{out}/shards/orig_v1]
output_dir: {out}/pretrain
save_every: 0
log_every: 5
"""


def run_demo(
    out: Path, seed: int = 0, show: int = 2, max_length: int = 64, pretrain_steps: int = 30
) -> dict:
    from rich.console import Console
    from rich.table import Table

    import policies
    from maskpt.cli import print_counts
    from maskpt.masking import Counts, mask_documents
    from maskpt.show import print_example, to_json
    from maskpt.tokenizer import TokenizerInfo, train_tokenizer
    from preprocess.readers import Document, read_jsonl

    console = Console(highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    corpus = bundled_corpus()
    docs = list(read_jsonl(corpus))
    console.rule("[bold]maskpt demo")
    console.print(f"corpus: {corpus.name} ({len(docs)} documents); output: {out}")
    tok = train_tokenizer(
        (d.text for d in docs if isinstance(d, Document)),
        out / "tokenizer",
        vocab_size=2000,
        min_frequency=1,
    )
    console.print(f"trained a {len(tok)}-token byte-level BPE tokenizer -> {out / 'tokenizer'}\n")
    info = TokenizerInfo.from_tokenizer(tok, str(out / "tokenizer"))

    summary = {"seed": seed, "max_length": max_length, "policies": {}}
    table = Table(title=f"heuristic policies on the bundled paragraphs (seed {seed})")
    for col in (
        "policy",
        "segments",
        "skipped",
        "masked tokens",
        "<mask> per seg",
        "source len",
        "target len",
    ):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name in HEURISTIC:
        console.rule(f"[bold]{name}")
        policy = policies.create(name, info)
        counts = Counts()
        examples = list(mask_documents(docs, tok, policy, seed, counts, max_length))
        for ex in examples[:show]:
            print_example(console, tok, ex)
        print_counts(console, counts, name)
        with (out / f"masked-{name}.jsonl").open("w", encoding="utf-8") as f:
            for ex in examples:
                f.write(json.dumps(to_json(tok, ex), ensure_ascii=False) + "\n")
        n = max(1, len(examples))
        stats = {
            **counts.as_dict(),
            "masks_per_segment": sum(ex.source_ids.count(info.mask_id) for ex in examples) / n,
            "mean_source_len": sum(len(ex.source_ids) for ex in examples) / n,
            "mean_target_len": sum(len(ex.target_ids) for ex in examples) / n,
        }
        summary["policies"][name] = stats
        table.add_row(
            name,
            str(stats["segments_written"]),
            str(sum(stats["skipped_segments"].values())),
            f"{stats['mask_ratio']:.1%}",
            f"{stats['masks_per_segment']:.2f}",
            f"{stats['mean_source_len']:.1f}",
            f"{stats['mean_target_len']:.1f}",
        )
    console.rule()
    console.print(table)

    summary["shards"] = preprocess_all(console, corpus, out, seed, max_length)
    if pretrain_steps:
        summary["pretrain"] = pretrain(console, out, seed, max_length, pretrain_steps)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"\nwrote {out / 'summary.json'}, masked-<policy>.jsonl, shards/ and pretrain/")
    return summary


def preprocess_all(console, corpus: Path, out: Path, seed: int, max_length: int) -> dict:
    import ray

    console.rule("[bold]preprocess on an embedded local Ray")
    started = not ray.is_initialized()
    if started:  # one local Ray for the three runs
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        return _preprocess_each(console, corpus, out, seed, max_length)
    finally:
        if started:
            ray.shutdown()


def _preprocess_each(console, corpus: Path, out: Path, seed: int, max_length: int) -> dict:
    from preprocess.config import PreprocessConfig
    from preprocess.inspection import verify
    from preprocess.pipeline import run_preprocess

    result = {}
    for name in HEURISTIC:
        folder = out / "shards" / name
        cfg = PreprocessConfig(
            inputs=(str(corpus),),
            output=str(folder),
            policy=name,
            tokenizer=str(out / "tokenizer"),
            seed=seed,
            max_length=max_length,
            format="both",
            docs_per_unit=4,
            shard_size=1000,
        )
        index = run_preprocess(cfg, progress=False)
        problems = verify(folder)
        c = index["counts"]
        console.print(
            f"{name}: {c['segments_written']} examples in {len(index['shards'])} shards "
            f"-> {folder} ({'verified' if not problems else 'VERIFY FAILED: ' + problems[0]})"
        )
        result[name] = {
            "folder": str(folder),
            "examples": c["segments_written"],
            "ok": not problems,
        }
    return result


def pretrain(console, out: Path, seed: int, max_length: int, steps: int) -> dict:
    import subprocess
    import sys

    console.rule("[bold]intermediate pre-training (tiny BART, DeepSpeed, CPU)")
    cfg_path = out / "pretrain.yaml"
    cfg_path.write_text(
        PRETRAIN_YAML.format(out=out, seed=seed, max_length=max_length, steps=steps)
    )
    run_dir = out / "pretrain"
    if (run_dir / "hf").exists():
        console.print(f"{run_dir / 'hf'} exists: skipping (delete it to train again)")
    else:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "-m", "train.pretrain", "--config", str(cfg_path)]
        console.print("$ " + " ".join(cmd) + "   (the first run compiles a DeepSpeed op, ~1 min)")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"pre-training failed:\n{proc.stderr[-3000:]}")
    logs = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    console.print(
        f"loss {logs[0]['loss']:.3f} (step {logs[0]['step']}) -> {logs[-1]['loss']:.3f} "
        f"(step {logs[-1]['step']}); exported model: {run_dir / 'hf'}"
    )
    return {
        "first_loss": logs[0]["loss"],
        "last_loss": logs[-1]["loss"],
        "steps": logs[-1]["step"],
        "export": str(run_dir / "hf"),
    }

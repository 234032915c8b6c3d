"""`maskpt demo`: the main job on the embedded default.

For now (foundation): trains a byte-level BPE on the paragraphs bundled with
the package, masks them with every heuristic policy, prints examples and a
statistics table, and writes `summary.json` and one `masked-<policy>.jsonl`
per policy to the output folder.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

HEURISTIC = ("orig_v1", "rand_v1", "ssm_v1")


def bundled_corpus() -> Path:
    return Path(str(resources.files("maskpt") / "data" / "sample_paragraphs.jsonl"))


def run_demo(out: Path, seed: int = 0, show: int = 2, max_length: int = 64) -> dict:
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
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"\nwrote {out / 'summary.json'} and masked-<policy>.jsonl files")
    return summary

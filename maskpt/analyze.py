"""`maskpt analyze`: what a policy masks, from its shards (the paper's Figs. 3 and 4).

For each shard folder, a deterministic sample of rows (a row is kept when a
hash of (seed, row id) falls under `--sample`) is decoded back to text with
the folder's tokenizer and tagged with spaCy. A word counts as masked when any
of its BPE tokens is masked (`masked` in the row). Two views:

- part of speech of the masked words, grouped as in Fig. 3: noun, propn, num,
  verb, adj, adp, adv, other (AUX, PRON, DET, PUNCT, ... go to other);
- mask frequency vs corpus frequency rank (Fig. 4): per lower-cased word type,
  how often it occurs in the sampled text and how often it was masked; plotted
  on log-log axes, one series per folder.

Outputs in OUT: `pos.csv`, `pos.png`, `freq-<label>.csv`, `freq.png` and
`analysis.json` (per folder: rows read and sampled, rows skipped with the
reason, words and masked words, the POS shares, the most-masked words).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from maskpt.core.config import ConfigError
from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer
from preprocess.index import load_index, tokenizer_source

GROUPS = ("noun", "propn", "num", "verb", "adj", "adp", "adv", "other")
_POS_GROUP = {
    "NOUN": "noun",
    "PROPN": "propn",
    "NUM": "num",
    "VERB": "verb",
    "ADJ": "adj",
    "ADP": "adp",
    "ADV": "adv",
}
# spaCy components that POS tagging does not need.
_NOT_POS = ("parser", "ner", "lemmatizer", "senter")


def keep_row(row_id: str, seed: int, fraction: float) -> bool:
    """Deterministic sampling: the same rows for the same (seed, fraction)."""
    from maskpt.core.seeding import stable_fraction

    return fraction >= 1 or stable_fraction("analyze", seed, row_id) < fraction


def load_tagger():
    """spaCy's English pipeline for part-of-speech tags (no parser or NER)."""
    from policies.ssm import load_spacy

    return load_spacy(exclude=_NOT_POS)


def token_spans(tok, input_ids) -> tuple[str, list[tuple[int, int]]] | None:
    """The row's text and each input token's character span ((0, 0) for
    specials), by re-tokenising the decoded text; None if that does not give
    back the same ids (the row cannot be aligned)."""
    special = set(tok.all_special_ids)
    body = [i for i in input_ids if i not in special]
    text = tok.decode(body, clean_up_tokenization_spaces=False)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != body:
        return None
    offsets = iter(enc["offset_mapping"])
    return text, [(0, 0) if i in special else tuple(next(offsets)) for i in input_ids]


class FolderStats:
    """The counts for one shard folder."""

    def __init__(self, label: str):
        self.label = label
        self.rows = self.sampled = 0
        self.skipped: Counter = Counter()
        self.pos: Counter = Counter()  # group -> masked words
        self.words: Counter = Counter()  # word type -> occurrences
        self.masked: Counter = Counter()  # word type -> masked occurrences

    def add(self, doc, spans, mask) -> None:
        marked = [(s, e) for (s, e), m in zip(spans, mask, strict=True) if m and e > s]
        for w in doc:
            if w.is_space:
                continue
            key = w.text.lower()
            self.words[key] += 1
            a, b = w.idx, w.idx + len(w.text)
            if any(s < b and a < e for s, e in marked):
                self.masked[key] += 1
                self.pos[_POS_GROUP.get(w.pos_, "other")] += 1

    def shares(self) -> dict[str, float]:
        total = sum(self.pos.values())
        return {g: (self.pos[g] / total if total else 0.0) for g in GROUPS}

    def freq_rows(self) -> list[tuple[str, int, int, int]]:
        """(word, corpus rank, corpus count, masked count), most frequent first."""
        ranked = sorted(self.words.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(w, r, n, self.masked[w]) for r, (w, n) in enumerate(ranked, 1)]

    def as_dict(self, top: int = 20) -> dict:
        return {
            "rows": self.rows,
            "sampled": self.sampled,
            "skipped": dict(self.skipped),
            "words": sum(self.words.values()),
            "masked_words": sum(self.masked.values()),
            "pos_counts": {g: self.pos[g] for g in GROUPS},
            "pos_shares": self.shares(),
            "top_masked": self.masked.most_common(top),
        }


def analyze_folder(
    folder: Path, label: str, sample: float, seed: int, nlp, progress=None, epoch: int | None = None
):
    """The stats of one folder's stored masks, or of the masks the trainer
    draws in `epoch` (from the rows' annotations)."""
    from preprocess.inspection import iter_rows
    from preprocess.remask import Remasker

    index = load_index(folder)
    tok = load_tokenizer(tokenizer_source(index))
    remasker = None if epoch is None else Remasker(index, TokenizerInfo.from_tokenizer(tok))
    stats = FolderStats(label)
    texts, aligned = [], []
    for _shard, _k, row in iter_rows(folder, index):
        stats.rows += 1
        if not keep_row(str(row["id"]), seed, sample):
            continue
        got = token_spans(tok, row["original_ids"])
        if got is None:
            stats.skipped["retokenize_mismatch"] += 1
            continue
        stats.sampled += 1
        if remasker is not None:
            row = remasker.draw(row, epoch)
        texts.append(got[0])
        aligned.append((got[1], row["masked"]))
    for doc, (spans, mask) in zip(nlp.pipe(texts, batch_size=256), aligned, strict=True):
        stats.add(doc, spans, mask)
        if progress:
            progress()
    return stats


def labels_for(folders: list[Path]) -> list[str]:
    """The policy name of each folder, or the folder name where policies repeat."""

    policies = [load_index(f).policy.name for f in folders]
    return [p if policies.count(p) == 1 else f.name for p, f in zip(policies, folders, strict=True)]


def plot(stats: list[FolderStats], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(stats), 4))
    bottom = [0.0] * len(stats)
    colors = plt.get_cmap("tab10").colors
    for g, c in zip(GROUPS, colors, strict=False):
        vals = [s.shares()[g] for s in stats]
        ax.bar([s.label for s in stats], vals, bottom=bottom, label=g, color=c)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("share of masked words")
    ax.set_title("Part of speech of masked words")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pos.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for s in stats:
        pts = [(r, m) for _, r, _, m in s.freq_rows() if m > 0]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=6, alpha=0.6, label=s.label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("corpus frequency rank")
    ax.set_ylabel("times masked")
    ax.set_title("Mask frequency vs corpus frequency rank")
    if ax.get_legend_handles_labels()[0]:  # nothing masked: an empty plot, no legend
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "freq.png", dpi=120)
    plt.close(fig)


def summary_lines(result: dict) -> list[str]:
    """One line per folder of `run_analysis`'s result: rows, skips, masked words
    and the POS groups with at least 5% of them."""
    lines = []
    for label, r in result["folders"].items():
        top = ", ".join(f"{g} {v:.0%}" for g, v in r["pos_shares"].items() if v >= 0.05)
        skipped = f", {sum(r['skipped'].values())} skipped" if r["skipped"] else ""
        lines.append(
            f"{label}: {r['sampled']}/{r['rows']} rows{skipped}, "
            f"{r['masked_words']} masked words ({top})"
        )
    return lines


def run_analysis(
    folders,
    out,
    sample: float = 0.01,
    seed: int = 0,
    progress: bool = True,
    epoch: int | None = None,
) -> dict:
    """Analyse each shard folder (its stored masks, or epoch `epoch`'s draws);
    write CSV, JSON and PNG to `out`; return the JSON."""

    if not 0 < sample <= 1:
        raise ConfigError(f"--sample must be in (0, 1], got {sample}")
    folders = [Path(f) for f in folders]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    nlp = load_tagger()
    stats = []

    for folder, label in zip(folders, labels_for(folders), strict=True):
        rows = load_index(folder).examples
        with tqdm(desc=f"analyze {label}", unit="row", total=rows, disable=not progress) as bar:
            stats.append(analyze_folder(folder, label, sample, seed, nlp, bar.update, epoch))
    with (out / "pos.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "group", "masked_words", "share"])
        for s in stats:
            for g in GROUPS:
                w.writerow([s.label, g, s.pos[g], f"{s.shares()[g]:.6f}"])
    for s in stats:
        with (out / f"freq-{s.label}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["word", "corpus_rank", "corpus_count", "masked_count"])
            w.writerows(s.freq_rows())
    result = {
        "sample": sample,
        "seed": seed,
        "epoch": epoch,
        "folders": {
            s.label: {"folder": str(f), **s.as_dict()} for s, f in zip(stats, folders, strict=True)
        },
    }
    (out / "analysis.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(stats, out)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="maskpt analyze",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  maskpt analyze runs/shards/orig runs/shards/ssm --sample 0.01 "
        "--out runs/analysis",
    )
    p.add_argument("folders", nargs="+", metavar="DIR", help="shard folders (one per policy)")
    p.add_argument("--out", required=True, help="folder for pos.png, freq.png, CSV and JSON")
    p.add_argument(
        "--sample", type=float, default=0.01, help="fraction of rows to analyse (default 0.01)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--epoch",
        type=int,
        default=None,
        metavar="E",
        help="analyse the masks the trainer draws in epoch E (default: the stored ones, epoch 0)",
    )
    args = p.parse_args(argv)
    result = run_analysis(
        args.folders, args.out, sample=args.sample, seed=args.seed, epoch=args.epoch
    )
    print("\n".join(summary_lines(result)))
    print(f"wrote pos.png, freq.png, pos.csv, freq-*.csv and analysis.json to {args.out}")
    return 0

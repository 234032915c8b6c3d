"""Masking throughput of each heuristic policy on the real Wikipedia sample,
against baselines measured in the same run:

- (a) raw tokenization of the same documents (the fast tokenizer call that
  segmentation itself makes), for `orig_v1` and `rand_v1`: target, masking
  adds at most 50% to tokenization time;
- (b) raw spaCy `nlp.pipe` NER on the same segment texts with the same
  components and batch size, for `ssm_v1`: target, >= 0.9x its throughput,
  for what a preprocessing worker does (annotate, then draw epoch 0) and for
  the annotation alone; the per-epoch draw from stored annotations (what the
  trainer's reader adds) is timed too.

Then bytes per row of each policy's shard rows, Arrow IPC and Parquet (zstd),
with the annotation columns and with only the materialised ones.

    python -m bench.mask_throughput [--dump PATH] [--tokenizer NAME_OR_DIR]

Without --tokenizer a byte-level BPE is trained on the sample first (offline).
Timings are the best of --repeats runs (NER and SSM: best of three, alternated,
on --ssm-segments segments).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DUMP = (
    Path(
        os.environ.get(
            "MASKPT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )
    / "wikipedia"
    / "enwiki-sample-pages-articles.xml.bz2"
)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dump", default=str(DEFAULT_DUMP))
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ssm-segments", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import policies
    from maskpt.core.records import Document
    from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer, tokenize_text, train_tokenizer
    from preprocess.segment import segment_document
    from preprocess.wikipedia import read_wikipedia_dump

    if not Path(args.dump).exists():
        sys.exit(f"dump {args.dump} not found (set MASKPT_SHARED_DATA or pass --dump)")
    docs = [d for d in read_wikipedia_dump(args.dump) if isinstance(d, Document)]
    chars = sum(len(d.text) for d in docs)
    if args.tokenizer:
        tok = load_tokenizer(args.tokenizer)
        tok_name = args.tokenizer
    else:
        tok = train_tokenizer((d.text for d in docs), tempfile.mkdtemp(), vocab_size=16000)
        tok_name = "byte-level BPE (16k) trained on the sample"
    info = TokenizerInfo.from_tokenizer(tok)
    print(f"{len(docs)} articles, {chars / 1e6:.2f} M characters; tokenizer: {tok_name}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )

    t_tok, _ = best_of(lambda: [tokenize_text(tok, d.text) for d in docs], args.repeats)

    def segment_all():
        return [
            s
            for d in docs
            for s in segment_document(tok, d.id, d.text, args.max_length, info)
            if hasattr(s, "input_ids")
        ]

    t_seg, segments = best_of(segment_all, args.repeats)
    n_tok = sum(len(s.input_ids) for s in segments)
    print(f"\n{len(segments)} segments, {n_tok} tokens")
    print(f"{'step':<31}{'seconds':>9}{'segments/s':>12}{'tokens/s':>12}{'vs tokenize':>13}")

    def row(name, secs, n_seg, n_tokens, base):
        ratio = f"{secs / base:.2f}x" if base else ""
        print(f"{name:<31}{secs:>9.3f}{n_seg / secs:>12.0f}{n_tokens / secs:>12.0f}{ratio:>13}")

    row("tokenize (baseline a)", t_tok, len(segments), n_tok, t_tok)
    row("tokenize + segment", t_seg, len(segments), n_tok, t_tok)
    for name in ("orig_v1", "rand_v1"):
        pol = policies.create(name, info)
        t_mask, _ = best_of(lambda pol=pol: pol.mask_batch(segments, args.seed), args.repeats)
        row(f"{name} masking", t_mask, len(segments), n_tok, t_tok)
        print(f"  -> {name} masking adds {t_mask / t_tok:.0%} to tokenization time (target <= 50%)")

    sub = segments[: args.ssm_segments]
    time_ssm(sub, info, args.seed, args.repeats, row)
    print_row_bytes({"orig_v1": segments, "rand_v1": segments, "ssm_v1": sub}, info, args.seed)


def time_ssm(sub, info, seed: int, repeats: int, row) -> None:
    """ssm_v1 on a worker (annotate + epoch-0 draw), its annotation alone and
    one epoch's draw, against raw NER on the same texts."""
    import policies
    from policies.ssm import find_entities

    sub_tok = sum(len(s.input_ids) for s in sub)
    texts = [s.text for s in sub]
    ssm = policies.create("ssm_v1", info)
    find_entities(texts[:100])  # load the model and warm up, outside the timings
    t_ner = t_ssm = t_ann = float("inf")
    for _ in range(3):  # alternate, best of three each: the machine's noise hits all
        t0 = time.perf_counter()
        find_entities(texts, batch_size=ssm.config.batch_size)
        t_ner = min(t_ner, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ssm.mask_batch(sub, seed)
        t_ssm = min(t_ssm, time.perf_counter() - t0)
        t0 = time.perf_counter()
        anns = ssm.annotate(sub)
        t_ann = min(t_ann, time.perf_counter() - t0)
    kept = [(s, a) for s, a in zip(sub, anns, strict=True) if hasattr(a, "spans")]
    t_draw, _ = best_of(lambda: [ssm.draw(s, a, seed, 1) for s, a in kept], repeats)
    print(f"\nSSM on {len(sub)} segments ({sub_tok} tokens):")
    row("nlp.pipe NER (baseline b)", t_ner, len(sub), sub_tok, None)
    row("ssm_v1 worker (annotate+draw)", t_ssm, len(sub), sub_tok, None)
    row("ssm_v1 annotate alone", t_ann, len(sub), sub_tok, None)
    row("ssm_v1 draw (an epoch)", t_draw, len(kept), sub_tok, None)
    print(
        f"  -> ssm_v1 worker throughput = {t_ner / t_ssm:.2f}x raw NER, annotation alone "
        f"{t_ner / t_ann:.2f}x (target >= 0.9x)"
    )


def print_row_bytes(segments_of: dict, info, seed: int) -> None:
    """Bytes per row of each policy's shard rows, with and without the annotation."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    import policies
    from preprocess.shards import SCHEMA, row_of

    def size(table, fmt):
        buf = io.BytesIO()
        if fmt == "arrow":
            with pa.ipc.new_stream(buf, table.schema) as w:
                w.write_table(table)
        else:
            pq.write_table(table, buf, compression="zstd")
        return buf.tell()

    materialised = ["id", "doc_id", "input_ids", "labels", "original_ids", "masked"]
    print(
        f"\n{'bytes per row':<16}{'arrow':>10}{'+annotation':>13}{'parquet':>10}{'+annotation':>13}"
    )
    for name, segs in segments_of.items():
        pol = policies.create(name, info)
        pairs = [
            (pol.draw(s, a, seed, 0), a)
            for s, a in zip(segs, pol.annotate(segs), strict=True)
            if hasattr(a, "spans")
        ]
        full = pa.Table.from_pylist([row_of(ex, a) for ex, a in pairs], schema=SCHEMA)
        cells = []
        for fmt in ("arrow", "parquet"):
            base, both = size(full.select(materialised), fmt), size(full, fmt)
            cells += [
                f"{base / len(pairs):>10.0f}",
                f"{both / len(pairs):>8.0f} ({both / base:.2f}x)",
            ]
        print(f"{name:<16}{''.join(cells)}")


if __name__ == "__main__":
    main()

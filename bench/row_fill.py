"""How full pre-training rows are: the segments preprocessing cuts from a
Wikipedia dump (whole sentences packed greedily up to max_length), as a share
of max_length. It decides what padding costs: a micro-batch padded to its
longest row (or to max_length, for one static compiled shape) computes the
rest of each row for nothing.

    python -m bench.row_fill [--dump ../shared/data/wikipedia/...xml.bz2]
        [--vocab 8000,30000] [--max-length 128]

BART's own tokenizer cannot be downloaded here, so a byte-level BPE is
trained on the dump itself at each vocabulary size (BART's has 50,265): the
more tokens per word, the more a sentence that does not fit leaves unused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.mask_throughput import DEFAULT_DUMP


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dump", default=str(DEFAULT_DUMP), help="a pages-articles XML dump")
    ap.add_argument("--vocab", default="8000,30000", help="BPE vocabulary sizes, comma-separated")
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args(argv)

    from maskpt.core.records import Skip
    from maskpt.core.tokenizer import TokenizerInfo, train_tokenizer
    from preprocess.segment import segment_document
    from preprocess.wikipedia import read_wikipedia_dump

    if not Path(args.dump).exists():
        sys.exit(f"dump {args.dump} not found (set MASKPT_SHARED_DATA or pass --dump)")
    docs = [d for d in read_wikipedia_dump(args.dump) if not isinstance(d, Skip)]
    print(f"{args.dump}: {len(docs)} articles, {sum(len(d.text) for d in docs):,} characters")
    for vocab in (int(v) for v in args.vocab.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            tok = train_tokenizer([d.text for d in docs], Path(tmp), vocab_size=vocab)
        info = TokenizerInfo.from_tokenizer(tok)
        lengths = [
            len(seg.input_ids)
            for d in docs
            for seg in segment_document(tok, d.id, d.text, args.max_length, info)
            if not isinstance(seg, Skip)
        ]
        n, m = len(lengths), args.max_length
        print(
            f"BPE of {len(tok):,} tokens: {n:,} segments, mean {statistics.mean(lengths):.1f} "
            f"tokens (median {statistics.median(lengths):g}), {sum(lengths) / (m * n):.1%} of "
            f"{m} filled; {sum(x >= m - 8 for x in lengths) / n:.1%} within 8 of {m}, "
            f"{sum(x < m // 2 for x in lengths) / n:.1%} under {m // 2}"
        )


if __name__ == "__main__":
    main()

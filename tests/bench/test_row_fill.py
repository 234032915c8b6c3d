"""bench/row_fill.py on the real Wikipedia sample: segments pack whole
sentences up to max_length, so they fill most of it."""

from __future__ import annotations

import re

import pytest

from bench.row_fill import main


def test_segments_of_the_sample_dump_fill_most_of_max_length(shared_data, capsys):
    dump = shared_data / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
    main(["--dump", str(dump), "--vocab", "2000", "--max-length", "64"])
    out = capsys.readouterr().out
    segments, fill = re.search(r"([\d,]+) segments, .* ([\d.]+)% of 64 filled", out).groups()
    assert int(segments.replace(",", "")) > 1000
    assert 70.0 < float(fill) < 100.0  # packed: a segment ends where the next sentence won't fit


def test_a_missing_dump_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        main(["--dump", str(tmp_path / "none.xml.bz2")])

"""Units are planned from the input alone, each worker reads its own (JSONL
byte ranges at line ends, multistream bz2 streams from the index, Parquet
row groups); markers round-trip; a torn marker or a missing shard means the
unit is done again."""

import json

import pytest

from maskpt.core.storage import Storage
from preprocess.counts import Counts
from preprocess.index import ShardEntry
from preprocess.plan import line_ranges, plan_units
from preprocess.units import UnitMarker, marker_name, read_marker
from tests.helpers import write_jsonl


def test_units_are_consecutive_records_with_stable_ids(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", ["one.", "two.", "three."])
    b = write_jsonl(tmp_path / "b.jsonl", ["four."])
    units = list(plan_units([a, b], docs_per_unit=2))
    assert [u.id for u in units] == ["000-000000", "000-000001", "001-000000"]
    assert [u.kind for u in units] == ["lines"] * 3 and not any(u.items for u in units)
    assert [len(list(u.read())) for u in units] == [2, 1, 1]
    assert [d.text for u in units for d in u.read()] == ["one.", "two.", "three.", "four."]


def test_marker_round_trip_torn_marker_and_missing_shard(tmp_path):
    store = Storage(str(tmp_path))
    staged = "_progress/units/part-000-000000-000.arrow"
    store.makedirs("_progress/units")
    store.write_bytes(staged, b"rows")
    entry = ShardEntry(staged, "arrow", "000-000000", 3, 30, 4, "ab")
    marker = UnitMarker("000-000000", Counts(documents_read=3), (entry,))
    store.write_bytes(marker_name("000-000000"), json.dumps(marker.as_dict()).encode())
    assert read_marker(store, "000-000000") == marker
    store.move(staged, "arrow/shard-000000.arrow")  # moved by an interrupted finalize
    assert read_marker(store, "000-000000") is None
    assert read_marker(store, "000-000000", {staged: "arrow/shard-000000.arrow"}) == marker
    store.remove("arrow/shard-000000.arrow")  # a shard deleted by hand: the unit is redone
    assert read_marker(store, "000-000000", {staged: "arrow/shard-000000.arrow"}) is None
    store.write_bytes(marker_name("000-000000"), b'{"unit": "000-0')
    assert read_marker(store, "000-000000") is None
    assert read_marker(store, "000-000009") is None


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_line_ranges_cut_at_line_ends_whatever_the_scan_chunk(tmp_path, chunk):
    lines = [f'{{"id": "{i}", "text": "{"x" * (i % 5)}"}}' for i in range(23)]
    for tail in ("\n", ""):  # with and without a final newline
        p = tmp_path / "a.jsonl"
        p.write_text("\n".join(lines) + tail)
        data = p.read_bytes()
        ranges = list(line_ranges(p, 5, chunk=chunk))
        assert [r[0] for r in ranges[1:]] == [r[1] for r in ranges[:-1]]  # contiguous
        assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
        assert all(data[e - 1 : e] == b"\n" for _, e, _, _ in ranges[:-1])  # at line ends
        assert [r[2] for r in ranges] == [1, 6, 11, 16, 21] and [r[3] for r in ranges] == [
            5
        ] * 4 + [3]
        units = list(plan_units([p], 5))
        read = [d.id for u in units for d in u.read()]
        assert read == [str(i) for i in range(23)]  # every line once, in order


def test_multistream_units_from_the_index(tmp_path):
    from preprocess.multistream import write_multistream

    pages = "".join(
        f"<page><title>P{i}</title><ns>0</ns><id>{i + 1}</id><revision>"
        f"<text>Page {i} is about the river {i}.</text></revision></page>\n"
        for i in range(250)
    )
    src = tmp_path / "src.xml"
    src.write_text(f"<mediawiki><siteinfo><sitename>W</sitename></siteinfo>\n{pages}</mediawiki>\n")
    dump = tmp_path / "w-multistream.xml.bz2"
    write_multistream(src, dump, pages_per_stream=20)
    units = list(plan_units([dump], 50))  # 3 streams (60 pages) a unit
    assert [u.kind for u in units] == ["multistream"] * 5 and [u.size for u in units] == [
        60
    ] * 4 + [10]
    assert [p.id for u in units for p in u.read()] == [str(i + 1) for i in range(250)]
    single = tmp_path / "single.xml"
    single.write_bytes(src.read_bytes())
    warned = []
    (only,) = plan_units([single], 1000, warn=warned.append)
    assert only.kind == "records" and len(only.items) == 250 and "cannot be split" in warned[0]


def test_parquet_units_are_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": str(i), "url": "u", "title": f"T{i}", "text": f"text {i}."} for i in range(30)]
    p = tmp_path / "w.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=7)
    units = list(plan_units([p], 10))  # 2 row groups (14 rows) a unit
    assert [u.kind for u in units] == ["parquet"] * 3 and [u.size for u in units] == [14, 14, 2]
    assert [d.id for u in units for d in u.read()] == [str(i) for i in range(30)]

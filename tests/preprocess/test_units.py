"""Units are cut by the input alone; markers round-trip and a torn one means redo."""

from pathlib import Path

from preprocess.counts import Counts
from preprocess.index import ShardEntry
from preprocess.units import UnitMarker, iter_units, marker_path, read_marker
from tests.helpers import write_jsonl


def test_units_are_consecutive_records_with_stable_ids(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", ["one.", "two.", "three."])
    b = write_jsonl(tmp_path / "b.jsonl", ["four."])
    units = list(iter_units([a, b], docs_per_unit=2))
    assert [u.id for u in units] == ["000-000000", "000-000001", "001-000000"]
    assert [len(u.items) for u in units] == [2, 1, 1]


def test_marker_round_trip_and_torn_marker(tmp_path):
    out = Path(tmp_path)
    (out / "_progress").mkdir()
    entry = ShardEntry("part-000-000000-000.arrow", "arrow", "000-000000", 3, 30, 100, "ab")
    marker = UnitMarker("000-000000", Counts(documents_read=3), (entry,))
    import json

    marker_path(out, "000-000000").write_text(json.dumps(marker.as_dict()))
    assert read_marker(out, "000-000000") == marker
    marker_path(out, "000-000000").write_text('{"unit": "000-0')
    assert read_marker(out, "000-000000") is None
    assert read_marker(out, "000-000009") is None

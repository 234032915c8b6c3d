"""Units are cut by the input alone; markers round-trip; a torn marker or a
missing shard means the unit is done again."""

import json

from maskpt.core.storage import Storage
from preprocess.counts import Counts
from preprocess.index import ShardEntry
from preprocess.units import UnitMarker, iter_units, marker_name, read_marker
from tests.helpers import write_jsonl


def test_units_are_consecutive_records_with_stable_ids(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", ["one.", "two.", "three."])
    b = write_jsonl(tmp_path / "b.jsonl", ["four."])
    units = list(iter_units([a, b], docs_per_unit=2))
    assert [u.id for u in units] == ["000-000000", "000-000001", "001-000000"]
    assert [len(u.items) for u in units] == [2, 1, 1]


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

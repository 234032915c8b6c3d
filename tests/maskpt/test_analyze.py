import csv
import json

import pytest

from maskpt.analyze import GROUPS, keep_row, run_analysis, token_spans
from maskpt.core.storage import Storage
from preprocess.index import PolicyInfo, ShardIndex, TokenizerRef
from preprocess.shards import write_shard

# (text, words to mask, their expected groups)
SENTENCES = [
    ("Alice visited Paris in 1999.", ["Paris", "1999"], ["propn", "num"]),
    (
        "The cat sat quietly on the red mat.",
        ["cat", "quietly", "red", "on"],
        ["noun", "adv", "adj", "adp"],
    ),
    ("The children played in the garden.", ["played", "garden", "The"], ["verb", "noun", "other"]),
]


def _row(tok, rid, text, words):
    enc = tok(text, return_offsets_mapping=True)
    spans = []
    for w in words:
        k = text.index(w)
        spans.append((k, k + len(w)))
    mask = [
        any(s < b and a < e for a, b in spans) and b > a
        for s, e in enc["offset_mapping"]
        for a, b in [(s, e)]
    ]
    ids = list(enc["input_ids"])
    return {
        "id": rid,
        "doc_id": rid,
        "input_ids": ids,
        "labels": ids,
        "original_ids": ids,
        "masked": mask,
    }


def _shard_folder(folder, tok, rows, policy):
    folder.mkdir(parents=True)
    entry = write_shard(Storage(str(folder)), "arrow/shard-000000.arrow", "arrow", rows, "u")
    index = ShardIndex(
        policy=PolicyInfo(policy),
        seed=0,
        max_length=128,
        inputs=(),
        tokenizer=TokenizerRef(tok.name_or_path, len(tok), ""),
        formats=("arrow",),
        shard_size=len(rows),
        docs_per_unit=1,
        shards=(entry,),
    )
    (folder / "index.json").write_text(json.dumps(index.as_dict()))
    return folder


@pytest.fixture
def folders(tmp_path, tokenizer):
    rows = [_row(tokenizer, f"r{i}", t, w) for i, (t, w, _) in enumerate(SENTENCES)]
    nums = [_row(tokenizer, "n0", "Alice visited Paris in 1999.", ["1999"])]
    return [
        _shard_folder(tmp_path / "a", tokenizer, rows, "mixed_v1"),
        _shard_folder(tmp_path / "b", tokenizer, nums, "num_v1"),
    ]


def test_known_pos_distribution(folders, tmp_path):
    result = run_analysis(folders, tmp_path / "out", sample=1.0, progress=False)
    mixed = result["folders"]["mixed_v1"]
    expected = {g: 0 for g in GROUPS}
    for _, _, groups in SENTENCES:
        for g in groups:
            expected[g] += 1
    assert mixed["pos_counts"] == expected
    assert mixed["masked_words"] == sum(expected.values())
    assert mixed["sampled"] == mixed["rows"] == 3 and not mixed["skipped"]
    assert result["folders"]["num_v1"]["pos_shares"]["num"] == 1.0
    for name in ("pos.png", "freq.png", "pos.csv", "freq-mixed_v1.csv", "analysis.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    with (tmp_path / "out" / "freq-mixed_v1.csv").open() as f:
        freq = {r["word"]: r for r in csv.DictReader(f)}
    assert freq["the"]["corpus_rank"] == "1" and freq["the"]["corpus_count"] == "4"
    assert freq["the"]["masked_count"] == "1"  # one of the four "the"s was masked
    assert freq["paris"]["masked_count"] == "1" and freq["alice"]["masked_count"] == "0"


def test_sampling_is_deterministic(folders, tmp_path):
    ids = [f"doc{i}-{j}" for i in range(2000) for j in range(2)]
    kept = [i for i in ids if keep_row(i, 7, 0.1)]
    assert kept == [i for i in ids if keep_row(i, 7, 0.1)]
    assert 0.07 < len(kept) / len(ids) < 0.13
    assert kept != [i for i in ids if keep_row(i, 8, 0.1)]
    a = run_analysis(folders, tmp_path / "x", sample=0.5, seed=1, progress=False)
    b = run_analysis(folders, tmp_path / "y", sample=0.5, seed=1, progress=False)
    assert a["folders"] == b["folders"]
    assert (tmp_path / "x" / "pos.csv").read_text() == (tmp_path / "y" / "pos.csv").read_text()


def test_token_spans_cover_the_text(tokenizer):
    ids = tokenizer("Alice visited Paris in 1999.")["input_ids"]
    text, spans = token_spans(tokenizer, ids)
    assert text == "Alice visited Paris in 1999."
    assert spans[0] == (0, 0) and spans[-1] == (0, 0)
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")


def test_bad_sample_fraction(folders, tmp_path):
    with pytest.raises(ValueError, match="--sample"):
        run_analysis(folders, tmp_path / "z", sample=0)


def test_cli_prints_a_line_per_folder(folders, tmp_path, capsys):
    from maskpt.cli import main

    args = ["analyze", *map(str, folders), "--sample", "1", "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "mixed_v1: 3/3 rows, 9 masked words" in out and "num_v1: 1/1 rows" in out
    assert (tmp_path / "cli" / "pos.png").exists()


def test_progress_shows_the_folders_row_count(folders, tmp_path, capsys):
    run_analysis(folders, tmp_path / "p", sample=1.0, progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "1/1" in err  # a total from index.json, not a bare count

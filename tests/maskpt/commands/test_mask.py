"""`maskpt mask`, `maskpt policies`, `maskpt tokenizer train`."""

import json
import os
import subprocess
import sys

from maskpt.cli import main


def test_tokenizer_train_then_mask_json(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("Marie Curie worked in Paris in 1903.\n\nThe river runs to the sea.\n" * 30)
    assert (
        main(
            [
                "tokenizer",
                "train",
                str(corpus),
                str(tmp_path / "tok"),
                "--vocab-size",
                "400",
                "--min-frequency",
                "1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    rc = main(
        [
            "mask",
            "--policy",
            "rand_v1",
            "--tokenizer",
            str(tmp_path / "tok"),
            "--json",
            "--text",
            "Marie Curie worked in Paris in 1903.",
            "--text",
            "Second text here.",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["id"] for r in rows] == ["text0-0", "text1-0"]
    for r in rows:
        assert set(r) >= {
            "id",
            "input_ids",
            "labels",
            "original_ids",
            "masked",
            "format",
            "source",
            "target",
        }
        assert len(r["masked"]) == len(r["original_ids"]) and r["format"] == "span"
        assert "<mask>" in r["source"] and 4 in r["input_ids"]  # the model input is masked
    assert "2 documents read" in captured.err


def test_mask_input_file_shows_highlighted(tmp_path, capsys, tokenizer):
    inp = tmp_path / "w.jsonl"
    inp.write_text(
        json.dumps({"id": "7", "title": "T", "text": "Alan Turing was born in London in 1912."})
        + "\n"
        + "{broken\n"
    )
    rc = main(
        [
            "mask",
            "--policy",
            "ssm_v1",
            "--tokenizer",
            tokenizer.name_or_path,
            "--input",
            str(inp),
            "--show",
            "1",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "7-0" in out and "<mask>" in out and "source" in out and "target" in out
    assert "invalid_json: 1" in out


def test_bad_override_is_a_clear_error(tmp_path, capsys, tokenizer):
    rc = main(
        [
            "mask",
            "--policy",
            "rand_v1",
            "--tokenizer",
            tokenizer.name_or_path,
            "--text",
            "x y",
            "--set",
            "policy_config.mask_ratio=2",
        ]
    )
    assert rc == 2
    assert "mask_ratio must be in (0, 1)" in capsys.readouterr().err


def test_offline_hub_name_says_how_to_train(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "-m", "maskpt.cli", "mask", "--policy", "rand_v1", "--text", "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "maskpt tokenizer train" in proc.stderr and "facebook/bart-base" in proc.stderr


def test_policies_lists_configs(capsys):
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    assert "orig_v1" in out and "poisson_lambda = 3.0" in out and "on_no_entity = 'drop'" in out


def test_tokenizer_train_shows_its_reading_against_the_input_size(tmp_path, capsys):
    """A compressed input cannot be counted in documents ahead of time: the bar
    counts the file's bytes read against its size, and ends full."""
    import gzip

    from tqdm import tqdm

    corpus = tmp_path / "c.jsonl.gz"
    lines = [
        json.dumps({"id": str(i), "text": f"Marie Curie worked in Paris in {1900 + i}."})
        for i in range(300)
    ]
    corpus.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    args = ["tokenizer", "train", str(corpus), str(tmp_path / "tok"), "--vocab-size", "400"]
    assert main(args) == 0
    err = capsys.readouterr().err
    size = tqdm.format_sizeof(corpus.stat().st_size)  # as the bar writes it
    assert "reading: 100%" in err and f"{size}/{size}" in err

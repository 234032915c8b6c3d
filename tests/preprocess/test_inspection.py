import json
import shutil

import pytest

from maskpt.cli import main
from preprocess.config import PreprocessConfig
from preprocess.pipeline import run_preprocess
from preprocess.wikipedia import DumpError
from tests.helpers import bundled_texts, synthetic_texts, write_jsonl


@pytest.fixture(scope="module")
def folder(tmp_path_factory, ray_local, tokenizer_dir):
    root = tmp_path_factory.mktemp("insp")
    inp = write_jsonl(root / "in.jsonl", bundled_texts() + synthetic_texts(20, seed=2))
    out = root / "shards"
    run_preprocess(
        PreprocessConfig(
            inputs=(str(inp),),
            output=str(out),
            policy="rand_v1",
            tokenizer=tokenizer_dir,
            format="both",
            docs_per_unit=10,
            shard_size=1000,
            workers=2,
        ),
        progress=False,
    )
    return out


def corrupt_copy(folder, tmp_path, mutate):
    dst = tmp_path / "copy"
    shutil.copytree(folder, dst)
    mutate(dst)
    return dst


def test_clean_folder_verifies(folder, capsys):
    assert main(["inspect", str(folder), "--verify"]) == 0
    assert "OK" in capsys.readouterr().out


def test_flipped_byte_in_arrow_is_caught(folder, tmp_path, capsys):
    def flip(d):
        p = d / "arrow" / "shard-000001.arrow"
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))

    bad = corrupt_copy(folder, tmp_path, flip)
    assert main(["inspect", str(bad), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "arrow/shard-000001.arrow" in out and "sha256" in out


def test_truncated_tar_is_caught_with_row(folder, tmp_path, capsys):
    def cut(d):
        p = d / "webdataset" / "shard-000000.tar"
        p.write_bytes(p.read_bytes()[:3000])

    bad = corrupt_copy(folder, tmp_path, cut)
    assert main(["inspect", str(bad), "--verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"]
    assert any("webdataset/shard-000000.tar" in p and "row" in p for p in report["problems"])


def test_missing_index_is_incomplete(folder, tmp_path, capsys):
    bad = corrupt_copy(folder, tmp_path, lambda d: (d / "index.json").unlink())
    assert main(["inspect", str(bad), "--verify"]) == 1
    assert "no index.json" in capsys.readouterr().out


def test_summary_and_show(folder, capsys):
    assert main(["inspect", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["policy"]["name"] == "rand_v1" and summary["examples"] > 20
    assert 0.13 < summary["mask_ratio"] < 0.17
    assert summary["span_length_histogram"]["1"] > 0
    assert main(["inspect", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "rand_v1" in text and "mask ratio" in text and "masked-span lengths" in text
    assert main(["inspect", str(folder), "--show", "2"]) == 0
    assert "<mask>" in capsys.readouterr().out
    assert main(["inspect", str(folder), "--show", "1", "--id", "doc3-0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "doc3-0"


def test_truncated_dump_through_pipeline_is_clear(tmp_path, tokenizer_dir, ray_local):
    import bz2

    xml = (
        "<mediawiki>"
        + "".join(
            f"<page><title>T{i}</title><ns>0</ns><id>{i}</id><revision><text>Text number {i}. "
            + "More words here. " * 30
            + "</text></revision></page>"
            for i in range(300)
        )
        + "</mediawiki>"
    )
    data = bz2.compress(xml.encode())
    dump = tmp_path / "cut.xml.bz2"
    dump.write_bytes(data[: len(data) * 2 // 3])
    cfg = PreprocessConfig(
        inputs=(str(dump),),
        output=str(tmp_path / "o"),
        policy="rand_v1",
        tokenizer=tokenizer_dir,
        docs_per_unit=50,
        workers=1,
    )
    with pytest.raises(DumpError, match="cut.xml.bz2: truncated or corrupt"):
        run_preprocess(cfg, progress=False)
    assert not (tmp_path / "o" / "index.json").exists()


def test_preprocess_cli(tmp_path, tokenizer_dir, ray_local, capsys):
    inp = write_jsonl(tmp_path / "in.jsonl", bundled_texts()[:4])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"# Used by: maskpt preprocess --config c.yaml\ninputs: [{inp}]\npolicy: orig_v1\n"
        f"tokenizer: {tokenizer_dir}\n"
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "preprocess",
                "--config",
                str(cfg),
                "--output",
                str(out),
                "--quiet",
                "--set",
                "policy_config.mask_ratio=0.2",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "4 documents read" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert index["policy"]["config"]["mask_ratio"] == 0.2
    assert (
        main(["preprocess", "--config", str(cfg), "--output", str(out), "--quiet", "--seed", "5"])
        == 2
    )
    assert "refusing to mix" in capsys.readouterr().err
    assert (
        main(["preprocess", "--config", str(cfg), "--output", str(out), "--set", "shard_size=0"])
        == 2
    )
    assert "shard_size must be >= 1" in capsys.readouterr().err

"""`maskpt study` end to end on a tiny study: real stages (preprocess,
pre-training, sweeps, report) on a tiny BART, each a task on the embedded
local Ray (preprocessing joins that Ray for its own workers), then a rerun,
here without Ray, that runs nothing."""

from __future__ import annotations

import json

import pytest

from maskpt.cli import main
from tests.maskpt.study.tiny import tiny_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_tiny_study_runs_every_stage_once(tmp_path, tokenizer_dir, tiny_bart, tiny_qa, capsys):
    config = tiny_study(tmp_path, tokenizer_dir, tiny_bart, tiny_qa)
    out = tmp_path / "out"
    assert main(["study", "--config", str(config)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "8 stage(s) ran, 0 were done, 0 failed, 0 not run" in printed
    report = json.loads((out / "report" / "report.json").read_text())
    assert (out / "report" / "report.md").read_text().startswith("## Study tiny: ")
    assert "none" in json.dumps(report) and "orig" in json.dumps(report)
    for row in ("orig", "rand"):
        assert (out / "pretrain" / row / "seed0" / "hf" / "config.json").exists()
        assert (out / "shards" / row / "index.json").exists()
    assert main(["study", "status", str(out)]) == 0
    assert "8 done of 8 stages" in capsys.readouterr().out
    assert main(["study", "--config", str(config), "--no-ray"]) == 0
    assert "0 stage(s) ran, 8 were done" in capsys.readouterr().out

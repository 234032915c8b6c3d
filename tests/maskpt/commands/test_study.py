"""`maskpt study --dry-run` and `maskpt study status` as a user meets them."""

from __future__ import annotations

import re

import pytest

from maskpt.cli import main
from tests.helpers import ROOT


def test_dry_run_prints_stages_resources_and_gpu_hours(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["study", "--config", "configs/study/paper.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("study paper: 115 stages")
    assert re.search(r"pretrain/ssm/seed0 +gpus 8 cpus 16 +46\.1 GPU-h", out)
    assert re.search(r"sweep/none/nq +gpus 1 cpus 1 +71\.4 GPU-h  \(9 runs\)", out)
    total = re.search(r"total +115 stages +([\d.]+) GPU-hours", out)
    kinds = re.findall(r"^  (?:sweep|pretrain) +\d+ stages +([\d.]+) GPU-hours", out, re.M)
    assert total and float(total.group(1)) == sum(map(float, kinds))
    assert not (ROOT / "runs" / "study" / "paper").exists()  # a dry run writes nothing


def test_status_of_a_folder_with_no_study_is_one_line(tmp_path, capsys):
    assert main(["study", "status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("maskpt study status: error: ") and "no study here" in err
    assert len(err.strip().splitlines()) == 1


def test_a_bad_study_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text(
        "name: x\nout: o\ncorpus: [c]\ntasks: [nq]\npretrain: p\nfinetune: f\n"
        "rows: [{name: r, policy: nope_v1}]\n"
    )
    assert main(["study", "--config", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "policy 'nope_v1' is not registered" in err and len(err.strip().splitlines()) == 1


def test_report_preface_must_exist(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["report", str(tmp_path), "--preface", str(tmp_path / "status.md")])
    assert stop.value.code == 2
    assert "--preface" in capsys.readouterr().err

"""`maskpt demo --size tiny`: every stage end to end (world, tokenizer, general
and intermediate pre-training with train/pretrain.py, learned policies, Ray
preprocessing, fine-tuning over seeds, table and plots), then a rerun that
finds everything done, then part of the same config as a study (`maskpt study`,
each stage a Ray task) with the same cells, runs and losses."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from maskpt.cli import main
from maskpt.core.config import ConfigError, load_config
from maskpt.core.io import FolderInUse
from maskpt.demo import POLICIES, SIZES, DemoConfig, run_demo
from maskpt.demo_config import demo_from
from maskpt.demo_plan import steps
from maskpt.world import ATTRIBUTES


def demo_config(size: str = "default", overrides=()) -> DemoConfig:
    """The config `maskpt demo --size SIZE OVERRIDES...` runs."""
    return load_config(DemoConfig, None, [*SIZES[size], *overrides])


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_tiny_demo_end_to_end_then_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "closed-book QA exact match" in printed

    table = json.loads((out / "results.json").read_text())
    rows = [*POLICIES, "sup_v1_transfer", "meta_v1_transfer"]
    assert table["checkpoints"] == ["none", *rows]
    assert table["tasks"] == ["synth", *ATTRIBUTES, "transfer"]
    for row in table["checkpoints"]:
        cell = table["cells"][f"{row}/synth"]
        # 2 pre-training seeds x 1 fine-tuning seed: runs 0 and 1, paired across rows
        assert cell["seeds"] == [0, 1] and 0 <= cell["mean"] <= 100
    # every cell tested against its column's single best (a tie at the top: no test)
    tested = [c for c in table["cells"].values() if c["p_vs_best"] is not None]
    assert table["comparisons"] == len(tested) and not any(c["best"] for c in tested)
    budget = table["meta_budget"]["meta_v1"]
    assert budget["rows"] > 0 and 0 <= budget["drawn_in_budget"] <= 1
    # the transfer policies learned on birth_year and birthplace questions only
    ids = [
        json.loads(x)["id"]
        for x in (out / "policies" / "transfer_examples.jsonl").read_text().splitlines()
    ]
    assert ids and {i.split("-")[1] for i in ids} == {"birth_year", "birthplace"}
    # each learned policy trained with 2 seeds; pre-training run k uses policy seed k mod 2
    for name in ("sup", "meta", "sup_transfer", "meta_transfer"):
        a, b = out / "policies" / name, out / "policies" / f"{name}-seed1"
        assert (a / "DONE").exists() and (b / "DONE").exists(), name
        assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()
    for row in ("sup_v1", "meta_v1_transfer"):
        for k, folder in ((0, row), (1, f"{row}-policy_seed1")):
            spec = yaml.safe_load(
                (out / "pretrain" / row / f"seed{k}" / "pretrain.yaml").read_text()
            )
            assert spec["data"]["shards"] == [str(out / "shards" / folder)]
    assert spec["data"]["shards"] != [str(out / "shards" / "ssm_v1")]
    ssm = yaml.safe_load((out / "pretrain" / "ssm_v1" / "seed1" / "pretrain.yaml").read_text())
    assert ssm["data"]["shards"] == [str(out / "shards" / "ssm_v1")]  # heuristics: one folder
    md = (out / "results.md").read_text()
    assert "+ ssm" in md and "no intermediate pre-training" in md
    for plot in ("em.png", "loss.png", "analysis/pos.png", "analysis/freq.png"):
        assert (out / plot).stat().st_size > 1000, plot
    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert set(analysis["folders"]) == set(rows)
    # ssm masks named entities and dates: proper nouns and numbers dominate
    ssm = analysis["folders"]["ssm_v1"]["pos_shares"]
    assert ssm["propn"] + ssm["num"] > 0.8
    for p in ("general", *[f"{r}/seed{k}" for r in rows for k in (0, 1)]):
        log = [json.loads(x) for x in (out / "pretrain" / p / "log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] == (30 if p == "general" else 20), p
        assert (out / "pretrain" / p / "hf" / "model.safetensors").exists()
    losses = [
        json.loads(x)["loss"]
        for k in (0, 1)
        for x in (out / "pretrain" / "ssm_v1" / f"seed{k}" / "log.jsonl").read_text().splitlines()
    ]
    assert losses[: len(losses) // 2] != losses[len(losses) // 2 :]  # two seeds, two runs

    # a rerun finds every stage complete and trains nothing
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    stamps.update({p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")})
    assert main(["demo", "--size", "tiny", "--out", str(out)]) == 0
    assert "exists" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "results.json").read_text()) == table

    # the study form (configs/study/demo.yaml's) on an embedded local Ray, each stage
    # `maskpt demo --stage ID` in its own process, on a part of this config (a heuristic and
    # a learned row: every kind of stage, a third of the stages): the same runs and cells
    part = {"size": "tiny", "policies": ["ssm_v1", "sup_v1"], "transfer": []}
    study_out = tmp_path / "study"
    spec = tmp_path / "study.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "demo",
                "out": str(study_out),
                "demo": part,
                # a training stage's threads = this process's (Ray sets OMP_NUM_THREADS to a
                # task's CPUs): the same float reduction order as the demo's in-process runs
                "resources": {"pretrain_cpus": torch.get_num_threads(), "retries": 0},
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "maskpt", "study", "--config", str(spec), "--address", "local"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    part_table = json.loads((study_out / "results.json").read_text())
    assert part_table["checkpoints"] == ["none", "ssm_v1", "sup_v1"]
    for key, cell in part_table["cells"].items():
        assert (cell["seeds"], cell["mean"]) == (
            table["cells"][key]["seeds"],
            table["cells"][key]["mean"],
        ), key
    twins = 0
    for metrics in study_out.rglob("finetune/**/metrics.json"):
        twin = out / metrics.relative_to(study_out)
        a, b = json.loads(metrics.read_text()), json.loads(twin.read_text())
        assert (a["dev"], a["test"]) == (b["dev"], b["test"]), metrics
        twins += 1
    for log in study_out.rglob("pretrain/**/log.jsonl"):
        twin = out / log.relative_to(study_out)
        assert losses_of(log) == pytest.approx(losses_of(twin), rel=1e-5), log
        twins += 1
    assert twins == 3 * 2 + 2 * 2 + 1  # fine-tuning 3 rows x 2 runs, pre-training 2 x 2 + general
    status = (study_out / "_study" / "status.md").read_text()
    assert f"{len(steps(demo_from(part)))} done of" in status


def losses_of(log) -> list[float]:
    return [json.loads(x)["loss"] for x in log.read_text().splitlines()]


def test_another_config_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.json").write_text(json.dumps({"seeds": 9}))
    with pytest.raises(FolderInUse, match="another config"):
        run_demo(demo_config("tiny"), out)


def test_sizes_and_bad_config():
    assert demo_config("tiny").world.people < demo_config("default").world.people
    quick = demo_config("quick")  # the RESULTS.md quick form: none vs ssm, shorter training
    assert quick.policies == ("ssm_v1",) and quick.steps < demo_config("default").steps
    large = demo_config("large")
    assert large.model["d_model"] == 256 and large.model["encoder_attention_heads"] == 4
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--size", "huge"])
    assert exc.value.code == 2
    with pytest.raises(ConfigError):
        demo_config("tiny", ["policies=[nope_v1]"])


def test_overwrite_starts_over_and_a_rerun_never_replaces(tmp_path, monkeypatch):
    import maskpt.demo as demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.json").write_text(json.dumps({"seeds": 9}))  # another config's finished demo
    assert main(["demo", "--size", "tiny", "--out", str(out)]) == 2  # refused, kept
    assert json.loads((out / "demo.json").read_text()) == {"seeds": 9}
    ran = []
    monkeypatch.setattr(demo, "run_demo", lambda cfg, o: ran.append((cfg, o)))
    assert main(["demo", "--size", "tiny", "--out", str(out), "--overwrite"]) == 0
    assert not out.exists() and ran and ran[0][1] == out

"""The demo's graph of stages (maskpt/demo_plan.py): what `maskpt demo` runs in
order and `maskpt study --config configs/study/demo.yaml` runs as tasks."""

from pathlib import Path

import pytest

from maskpt.cli import main
from maskpt.core.config import ConfigError, load_config, to_dict
from maskpt.demo_config import SIZES, DemoConfig, demo_from
from maskpt.demo_plan import NONE_ROW, rows_of, steps
from maskpt.study.plan import plan
from maskpt.study.spec import StudyConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_comes_after_what_it_needs_and_each_run_has_its_inputs():
    cfg = demo_from({"size": "tiny"})  # 2 pre-training seeds, 2 policy seeds, transfer rows
    order = [s.id for s in steps(cfg)]
    assert len(order) == len(set(order))
    seen: set[str] = set()
    for s in steps(cfg):
        assert set(s.deps) <= seen, s.id
        seen.add(s.id)
    deps = {s.id: s.deps for s in steps(cfg)}
    rows = rows_of(cfg)
    assert rows == [*cfg.policies, "sup_v1_transfer", "meta_v1_transfer"]
    # pre-training run k of a learned row reads the shards of policy seed k mod 2
    assert "preprocess/sup_v1/seed1" in deps["pretrain/sup_v1/seed1"]
    assert deps["preprocess/meta_v1_transfer/seed1"] == (
        "tokenizer",
        "policy/meta_v1_transfer/seed1",
    )
    assert "preprocess/ssm_v1" in deps["pretrain/ssm_v1/seed1"]  # heuristic: one folder
    # fine-tuning run r of a row: pre-training seed r // seeds; `none`: the general model
    runs = cfg.pretrain_seeds * cfg.seeds
    assert deps["finetune/none/run1"] == ("pretrain/general",)
    assert deps["finetune/rand_v1/run1"] == ("pretrain/rand_v1/seed1",)
    assert set(deps["results"]) == {
        f"finetune/{r}/run{k}" for r in [NONE_ROW, *rows] for k in range(runs)
    }
    # the demo's order: the groups as its 8 numbered stages, each once
    groups = [s.group for s in steps(cfg)]
    assert [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g] == [
        "world",
        "tokenizer",
        "general",
        "policy",
        "preprocess",
        "pretrain",
        "finetune",
        "results",
    ]


def test_the_demo_study_config_plans_the_demos_stages():
    cfg = load_config(StudyConfig, ROOT / "configs" / "study" / "demo.yaml", ["out=/tmp/x"])
    graph = plan(cfg)
    demo = load_config(DemoConfig, None, SIZES["default"])
    assert graph.order == [s.id for s in steps(demo)]
    for sid in graph.order:
        s = graph.stages[sid]
        assert s.argv[:2] == ("maskpt", "demo") and s.argv[-2:] == ("--stage", sid)
        assert s.config == to_dict(demo) and s.gpus == 0
        torch_stage = sid.split("/")[0] in ("policy", "pretrain", "finetune")
        assert s.cpus == (2 if torch_stage else 1), sid
    tiny = load_config(StudyConfig, None, ["name=t", "out=/tmp/t", "demo.size=tiny"])
    assert len(plan(tiny).order) == len(steps(demo_from({"size": "tiny"})))
    with pytest.raises(ConfigError, match="size 'huge'"):
        load_config(StudyConfig, None, ["name=t", "out=/tmp/t", "demo.size=huge"])
    with pytest.raises(ConfigError, match="steps"):
        load_config(StudyConfig, None, ["name=t", "out=/tmp/t", "demo.steps=0"])
    with pytest.raises(ConfigError, match="a demo study takes no tasks"):
        load_config(StudyConfig, None, ["name=t", "out=/tmp/t", "demo.size=tiny", "tasks=[nq]"])


def test_an_unknown_stage_is_refused_with_the_list(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "tiny", "--out", str(out), "--stage", "pretrain/nope"]) == 2
    err = capsys.readouterr().err
    assert "not a stage of this demo" in err and "pretrain/ssm_v1/seed1" in err
    assert not out.exists()

"""configs/study/paper.yaml as stages: what each stage runs, needs and costs."""

from __future__ import annotations

from collections import Counter

import pytest

from maskpt.commands.study import study_args
from maskpt.core.config import ConfigError
from maskpt.study.plan import plan
from tests.helpers import ROOT

PAPER = str(ROOT / "configs" / "study" / "paper.yaml")


@pytest.fixture
def paper(monkeypatch):
    monkeypatch.chdir(ROOT)

    def make(*overrides):
        cfg, _ = study_args().parse(["--config", PAPER, *overrides])
        return cfg, plan(cfg)

    return make


def test_paper_study_stages(paper):
    cfg, g = paper()
    kinds = Counter(s.kind for s in g.stages.values())
    learned = [r for r in cfg.rows if r.policy in ("sup_v1", "meta_v1")]
    assert kinds == {
        "policy": len(learned),
        "preprocess": len(cfg.rows),
        "pretrain": len(cfg.rows),
        # the baseline and the heuristic rows on all nine tasks, learned rows on their table's three
        "sweep": 9 + 3 * 9 + 3 * len(learned),
        "report": 1,
    }
    sup = g.stages["preprocess/sup-nq/seed0"]
    assert sup.deps == ("policy/sup-nq/seed0",)
    assert sup.config["policy_config"]["checkpoint"] == g.stages["policy/sup-nq/seed0"].output
    # wikipedia_ssm.yaml's policy_config is for ssm_v1 only
    assert g.stages["preprocess/ssm"].config["policy_config"] == {"on_no_entity": "drop"}
    assert g.stages["preprocess/orig"].config["policy_config"] == {}
    run = g.stages["pretrain/ssm/seed0"]
    assert run.deps == ("preprocess/ssm",)
    assert run.argv[:3] == ("torchrun", "--standalone", "--nproc_per_node=8")
    assert run.resume == (run.config["output_dir"] + "/checkpoints/latest", "--resume")
    assert g.stages["sweep/ssm/nq"].deps == (run.id,)
    assert g.stages["sweep/none/nq"].deps == ()
    assert set(g.stages["report"].deps) == {s for s in g.stages if s.startswith("sweep/")}


def test_paper_study_costs(paper):
    _, g = paper()
    # 100,000 x 2,048 x 128 tokens at 158,092 tokens/s
    assert g.stages["pretrain/ssm/seed0"].cost["gpu_hours"] == pytest.approx(46.06, abs=0.01)
    nq = g.stages["sweep/ssm/nq"].cost
    # staged search: 4 lrs + 3 more batch sizes + 2 more seeds; a run is 100 epochs of 79,168
    # at 294/s plus 50 dev passes of 8,757 at 268/s
    assert nq["runs"] == 9
    assert nq["run_hours"] == pytest.approx((100 * 79168 / 294 + 50 * 8757 / 268) / 3600)
    grid = paper("sweep.search=grid")[1].stages["sweep/ssm/nq"].cost
    assert grid["runs"] == 4 * 4 * 3


def test_seeds_multiply_runs_and_policies(paper):
    _, g = paper("pretrain_seeds=3", "policy_seeds=2")
    ids = set(g.stages)
    assert {"pretrain/sup-nq/seed0", "pretrain/sup-nq/seed2"} <= ids
    assert {
        "policy/sup-nq/seed0",
        "policy/sup-nq/seed1",
    } <= ids and "policy/sup-nq/seed2" not in ids
    # pre-training run k masks with policy seed k mod 2
    assert g.stages["pretrain/sup-nq/seed2"].deps == ("preprocess/sup-nq/seed0",)
    assert g.stages["pretrain/sup-nq/seed1"].deps == ("preprocess/sup-nq/seed1",)
    seeds = {g.stages[f"pretrain/ssm/seed{k}"].config["seed"] for k in range(3)}
    assert seeds == {0, 1, 2}
    assert "sweep/ssm-pt2/nq" in ids


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pretrain_set={optim.lrr: 1}", "stage pretrain/orig/seed0"),
        ("sweep.finetune={nope: 1}", "finetune.nope"),
        ("tasks=[nq, squad]", "unknown"),
        ("preprocess_set={policy: rand_v1}", "set by the study"),
        ("policy_trainer={meta: {lr: x}}", "stage policy/meta-nq/seed0"),
    ],
)
def test_a_bad_stage_config_is_refused_before_anything_runs(paper, override, message):
    with pytest.raises(ConfigError, match=message):
        paper(override)


def test_pretrain_set_is_applied_to_each_stage_without_sharing(paper):
    _, g = paper("pretrain_set={optim.lr: 3.0e-4}")
    a, b = (g.stages[f"pretrain/{r}/seed0"].config for r in ("orig", "ssm"))
    assert a["optim"]["lr"] == b["optim"]["lr"] == 3.0e-4
    assert a["optim"]["warmup_steps"] == 500  # the file's other optim fields stay
    assert a["optim"] is not b["optim"]  # one stage's config is not another's

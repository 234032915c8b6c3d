"""Pre-training with masks drawn per epoch: epoch 0 is the stored mask, later
epochs differ, a run stopped in its third epoch resumes to the same weights,
and one annotated ssm folder trains as orig, rand or a mixture."""

import json
import math

import pytest

from maskpt.core.config import ConfigError, load_config
from preprocess.remask import PolicyNotServed
from tests.helpers import TINY, make_shards, run_cfg, run_main
from train.data import open_source
from train.pretrain import PretrainConfig


@pytest.fixture(scope="module")
def small(tmp_path_factory, tokenizer):
    """A folder of a couple of dozen rows, so a few steps of 8 span 3 epochs."""
    return make_shards(tmp_path_factory.mktemp("small") / "arrow", tokenizer, n_synthetic=4)


def _plan(small):
    n = open_source(str(small)).size
    total = math.ceil(2.5 * n / 8) + 1  # well into the third epoch (epoch 2)
    return n, dict(total_steps=total, global_batch=8, micro_batch=4, save_every=2)


def _losses(folder):
    return [json.loads(x)["loss"] for x in (folder / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small, tokenizer):
    out = tmp_path_factory.mktemp("per_epoch")
    run_main(["--config", str(TINY), *run_cfg(out, small, tokenizer, **_plan(small)[1])], out)
    return out


def test_epoch_zero_is_the_stored_mask_and_later_epochs_differ(
    tmp_path, small, tokenizer, uninterrupted
):
    n, plan = _plan(small)
    run_main(
        [
            "--config",
            str(TINY),
            *run_cfg(tmp_path, small, tokenizer, **{"data.remask": "fixed"}, **plan),
        ],
        tmp_path,
    )
    first_epoch = n // 8  # steps whose 8 examples all come from epoch 0
    per_epoch, fixed = _losses(uninterrupted), _losses(tmp_path)
    assert first_epoch >= 1 and len(per_epoch) == len(fixed) == plan["total_steps"]
    assert per_epoch[:first_epoch] == pytest.approx(fixed[:first_epoch], rel=1e-6)
    # same examples in the same order, other masks: the losses part from epoch 1 on
    assert per_epoch[first_epoch + 1 :] != pytest.approx(fixed[first_epoch + 1 :], rel=1e-6)
    ids = lambda d: (d / "example_ids.rank0.jsonl").read_text()  # noqa: E731
    assert ids(uninterrupted) == ids(tmp_path)


@pytest.mark.slow  # two more pre-training processes; the epoch-0 test covers the drawing
def test_stop_in_third_epoch_and_resume_matches_uninterrupted(
    tmp_path, small, tokenizer, uninterrupted
):
    n, plan = _plan(small)
    stop = plan["total_steps"] - 1
    assert stop * 8 > 2 * n  # stopped inside epoch 2
    run_main(
        ["--config", str(TINY), *run_cfg(tmp_path, small, tokenizer, stop_after=stop, **plan)],
        tmp_path,
    )
    run_main(
        ["--config", str(TINY), "--resume", *run_cfg(tmp_path, small, tokenizer, **plan)], tmp_path
    )
    assert _losses(tmp_path) == pytest.approx(_losses(uninterrupted), rel=1e-5)
    weights = "param_sha256.rank0.txt"
    assert (tmp_path / weights).read_text() == (uninterrupted / weights).read_text()


@pytest.fixture(scope="module")
def ssm_folder(tmp_path_factory, tokenizer):
    return make_shards(
        tmp_path_factory.mktemp("ssm") / "arrow", tokenizer, policy="ssm_v1", n_synthetic=4
    )


def test_one_ssm_folder_trains_as_a_mixture_of_policies(tmp_path, ssm_folder, tokenizer):
    mix = '{"ssm_v1": 0.5, "orig_v1": 0.25, "rand_v1": 0.25}'
    plan = dict(total_steps=2, global_batch=8, micro_batch=4, save_every=0)
    run_main(
        [
            "--config",
            str(TINY),
            *run_cfg(tmp_path, ssm_folder, tokenizer, **{"data.policy": mix}, **plan),
        ],
        tmp_path,
    )
    assert len(_losses(tmp_path)) == 2
    mark = tmp_path / "checkpoints" / "step00000002" / "maskpt-complete.rank0.json"
    assert json.loads(mark.read_text())["data"]["policy"] == {
        "ssm_v1": 0.5,
        "orig_v1": 0.25,
        "rand_v1": 0.25,
    }


def test_a_policy_the_folder_cannot_serve_is_refused(tmp_path, small, tokenizer):
    from train.pretrain import prepare

    def cfg(**o):
        return load_config(PretrainConfig, TINY, run_cfg(tmp_path, small, tokenizer, **o))

    with pytest.raises(PolicyNotServed, match="ssm_v1 needs entities"):
        prepare(cfg(**{"data.policy": "ssm_v1"}), 1)
    with pytest.raises(ConfigError, match="data.remask: per_epoch"):
        cfg(**{"data.policy": "orig_v1", "data.remask": "fixed"})

"""Every variant of bench/pretrain_throughput.py is a valid set of overrides of
the paper's pre-training config (the GPU check runs some of them unrehearsed);
the rates it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.pretrain_throughput import VARIANTS, best_rate, rate
from maskpt.core.config import load_config
from train.pretrain_config import PretrainConfig

PAPER = Path(__file__).resolve().parents[2] / "configs/pretrain/bart_base_paper.yaml"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_overrides_load(name):
    cfg = load_config(PretrainConfig, PAPER, VARIANTS[name])
    if name.startswith("static"):  # static shapes: compiled without dynamic shapes
        assert cfg.compile and cfg.compile_options == {"dynamic": False}
        inputs = cfg.data.pad_to_multiple_of
        labels = cfg.data.pad_labels_to_multiple_of or inputs
        assert cfg.max_length % inputs == 0 and cfg.max_length % labels == 0
        # at most 4 (encoder, decoder) length pairs: within dynamo's recompile limit of 8
        assert (cfg.max_length // inputs) * (cfg.max_length // labels) <= 4


def test_rates_over_steps_and_the_best_of_rounds_per_step():
    slow_first = [(100, 2.0), (300, 1.0)]  # (real tokens, seconds) per step
    slow_second = [(100, 1.0), (300, 3.0)]
    assert rate(slow_first) == pytest.approx(400 / 3)
    # each step's fastest time over the rounds: 1.0 s and 1.0 s for the 400 tokens
    assert best_rate([slow_first, slow_second]) == pytest.approx(200)
    assert best_rate([slow_first, slow_first[:1]]) == pytest.approx(50)  # the steps both have

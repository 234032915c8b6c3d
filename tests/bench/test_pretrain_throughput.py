"""Every variant of bench/pretrain_throughput.py is a valid set of overrides of
the paper's pre-training config (the GPU check runs some of them unrehearsed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.pretrain_throughput import VARIANTS
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

"""Every checked-in YAML under configs/ loads, with the overrides its header's
"Used by" line shows, into the config class of the command it names."""

from __future__ import annotations

import shlex

import pytest

from tests.helpers import ROOT


def _command_args(words: list[str]):
    """The ConfigArgs of the command a "Used by" line starts with, and its arguments."""
    from maskpt.commands.shards import preprocess_args
    from maskpt.commands.study import study_args
    from train import finetune, pretrain, sweep

    table = {
        ("maskpt", "pretrain"): pretrain.config_args,
        ("deepspeed", "train/pretrain.py"): pretrain.config_args,
        ("maskpt", "finetune"): finetune.config_args,
        ("maskpt", "preprocess"): preprocess_args,
        ("maskpt", "sweep"): sweep.config_args,
        ("maskpt", "study"): study_args,
    }
    for head, make in table.items():
        if tuple(words[: len(head)]) == head:
            return make(), words[len(head) :]
    raise AssertionError(f"no command known for {' '.join(words[:2])!r}")


CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_loads_with_its_used_by_line(path, monkeypatch):
    header = path.read_text().splitlines()[0]
    assert header.startswith("# Used by: "), f"{path}: first line must be '# Used by: COMMAND'"
    line = header.removeprefix("# Used by: ").split("   (")[0]  # a trailing (note) is prose
    args, argv = _command_args(shlex.split(line))
    monkeypatch.chdir(ROOT)
    cfg, _ = args.parse(argv)
    assert type(cfg).__name__.endswith("Config")

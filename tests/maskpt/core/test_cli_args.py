"""The one command line: --config FILE, a flag per field, KEY=VALUE anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import ConfigError


@dataclass(frozen=True)
class Opt:
    lr: float = 0.1
    """step size"""


@dataclass(frozen=True)
class Recipe:
    data_dir: str = ""
    """where the data is"""
    lr: float = 1.0
    """learning rate"""
    steps: int = 1
    inputs: tuple[str, ...] = ()
    """input files"""
    verbose: bool = False
    opt: Opt = field(default_factory=Opt)
    """the optimizer"""

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_file_then_flags_then_overrides_in_any_order(tmp_path):
    cfg_file = tmp_path / "r.yaml"
    cfg_file.write_text("lr: 0.5\nsteps: 3\n")
    args = ConfigArgs(Recipe, "prog")
    cfg, _ = args.parse(
        [
            "lr=0.2",
            "--config",
            str(cfg_file),
            "--data-dir",
            "d",
            "opt.lr=3e-4",
            "--lr",
            "0.1",
            "--local_rank=1",
        ]
    )
    assert cfg == Recipe(data_dir="d", lr=0.2, steps=3, opt=Opt(3e-4))  # file < flag < key=value
    assert args.parse([])[0] == Recipe()


def test_list_flags_repeat_and_leave_overrides_alone():
    cfg, _ = ConfigArgs(Recipe, "prog").parse(
        ["--inputs", "a", "b", "steps=4", "--inputs", "c", "--verbose", "--set", "opt.lr=2"]
    )
    assert cfg.inputs == ("a", "b", "c") and cfg.steps == 4 and cfg.verbose and cfg.opt.lr == 2.0


def test_aliases_extra_flags_and_positionals():
    args = ConfigArgs(
        Recipe,
        "prog",
        aliases={"--input": "inputs", "--step-size": "opt.lr"},
        positionals=(("out", "folder"),),
    )
    args.parser.add_argument("--resume", action="store_true")
    cfg, ns = args.parse(["OUT", "--input", "x", "--step-size", "0.5", "--resume", "steps=2"])
    assert cfg.inputs == ("x",) and cfg.opt.lr == 0.5 and cfg.steps == 2
    assert ns.resume and ns.out == "OUT"


def test_bad_input_is_refused_by_name():
    args = ConfigArgs(Recipe, "prog")
    with pytest.raises(ConfigError, match="unknown key"):
        args.parse(["stepz=3"])
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        args.parse(["steps=0"])
    with pytest.raises(ConfigError, match="lr must be float"):
        args.parse(["--lr", "fast"])
    with pytest.raises(ConfigError, match="neither an option nor KEY=VALUE"):
        args.parse(["stray"])
    with pytest.raises(SystemExit):
        args.parse(["--no-such-flag"])


def test_help_lists_every_field_with_its_docstring(capsys):
    with pytest.raises(SystemExit):
        ConfigArgs(Recipe, "prog", "what it does").parse(["--help"])
    out = capsys.readouterr().out
    for text in (
        "what it does",
        "--data-dir",
        "data_dir = ''",
        "where the data is",
        "opt.lr = 0.1",
        "step size",
        "--config FILE",
    ):
        assert text in out

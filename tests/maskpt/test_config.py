from dataclasses import dataclass, field
from typing import Literal

import pytest

from maskpt.config import ConfigError, build_dataclass, load_config, parse_overrides, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-4
    """learning rate"""


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    steps: int = 10
    mode: Literal["a", "b"] = "a"
    tags: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_yaml_and_dotted_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("# used by: nothing\nname: y\ninner:\n  lr: 0.001\n")
    cfg = load_config(Outer, p, ["inner.lr=3e-4", "tags=[a, b]", "steps=5"])
    assert cfg == Outer(name="y", steps=5, tags=("a", "b"), inner=Inner(lr=3e-4))
    assert to_dict(cfg)["tags"] == ["a", "b"]


def test_errors_name_the_key_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key\(s\) stepz"):
        load_config(Outer, p)
    with pytest.raises(ConfigError, match="inner.lr must be float"):
        build_dataclass(Outer, {}, ["inner.lr=fast"])
    with pytest.raises(ConfigError, match="mode must be one of"):
        build_dataclass(Outer, {"mode": "c"})
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        build_dataclass(Outer, {"steps": 0})
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "none.yaml")


def test_recipe_config_shortcuts_then_overrides(tmp_path):
    from dataclasses import dataclass

    from maskpt.config import recipe_config

    @dataclass(frozen=True)
    class Recipe:
        data_dir: str = ""
        lr: float = 1.0
        steps: int = 1

    cfg_file = tmp_path / "r.yaml"
    cfg_file.write_text("lr: 0.5\nsteps: 3\n")
    cfg = recipe_config(Recipe, ["--config", str(cfg_file), "--data-dir", "d", "--lr", "0.1",
                                 "lr=0.2", "--local_rank", "1"], "prog", "doc",
                        ("data_dir", "lr"))  # fmt: skip
    assert cfg == Recipe(data_dir="d", lr=0.2, steps=3)  # file < shortcut < key=value
    assert recipe_config(Recipe, [], "prog", "doc", ("lr",)) == Recipe()

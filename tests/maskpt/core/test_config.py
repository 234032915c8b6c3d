from dataclasses import dataclass, field
from typing import Literal

import pytest

from maskpt.core.config import ConfigError, build_dataclass, load_config, parse_overrides, to_dict


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


def test_override_values_keep_their_text_for_string_fields():
    @dataclass(frozen=True)
    class C:
        text: str = ""
        n: int = 0
        extra: dict = field(default_factory=dict)

    cfg = build_dataclass(C, {}, ["text=a: b", "n=7", "extra.k=[1, 2]", "extra.name=007"])
    assert cfg.text == "a: b" and cfg.n == 7
    assert cfg.extra == {"k": [1, 2], "name": 7}  # untyped values are YAML


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(
        ConfigError, match=r"unknown key\(s\) inner.lrr \(did you mean inner.lr\?\)"
    ):
        build_dataclass(Outer, {}, ["inner.lrr=1"])


def test_field_docs_and_describe_fields():
    from maskpt.core.config import describe_fields, field_docs

    assert field_docs(Inner) == {"lr": "learning rate"}
    rows = {k: (d, doc) for k, d, doc in describe_fields(Outer)}
    assert rows["inner.lr"] == ("0.0001", "learning rate")
    assert rows["steps"][0] == "10" and rows["tags"][0] == "()"


def test_errors_name_a_nested_key_once_and_blame_the_command_line_for_its_values(tmp_path):
    """`model.model.tokenizer` was printed for a nested check, and values set by
    KEY=VALUE were blamed on the YAML file."""
    from pathlib import Path

    from train.pretrain_config import PretrainConfig

    tiny = Path(__file__).resolve().parents[3] / "configs" / "pretrain" / "tiny_cpu.yaml"
    with pytest.raises(ConfigError, match=r"tiny_cpu.yaml: model.tokenizer: give") as info:
        load_config(PretrainConfig, tiny, ["data.shards=[x]"])
    assert "model.model" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^command line optim.lr=-1: optim.lr must be > 0"):
        load_config(PretrainConfig, tiny, ["data.shards=[x]", "model.tokenizer=t", "optim.lr=-1"])
    with pytest.raises(ConfigError, match=r"^command line micro_batch=3: global_batch 16"):
        load_config(PretrainConfig, tiny, ["data.shards=[x]", "model.tokenizer=t", "micro_batch=3"])

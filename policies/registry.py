"""The policy registry: versioned names -> policy classes.

A policy is one class with a `name`, a config dataclass `config_cls` and a
`mask(segment, seed)` method. Registering a second class under a taken name
is refused: a behaviour change gets a new version (`rand_v2`), so shards keep
naming the policy that made them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from maskpt.core.config import build_dataclass
from maskpt.core.errors import UserError
from maskpt.core.tokenizer import TokenizerInfo


class UnknownPolicy(UserError, KeyError):
    """A policy name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: register a policy under a versioned name like `orig_v1`."""
    if not name or "_v" not in name:
        raise ValueError(f"policy name {name!r} must be versioned, like 'orig_v1'")

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(
                f"policy {name!r} is already registered ({_REGISTRY[name].__module__}."
                f"{_REGISTRY[name].__qualname__}); give a changed policy a new version"
            )
        if not dataclasses.is_dataclass(getattr(cls, "config_cls", None)):
            raise TypeError(f"policy {name!r}: config_cls must be a dataclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> type:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownPolicy(f"unknown policy {name!r}; registered: {', '.join(names())}") from None


def create(
    name: str,
    tokenizer_info: TokenizerInfo,
    config: Any = None,
    overrides=(),
    annotating: bool = True,
):
    """Instantiate a registered policy. `config` may be None (defaults), a dict
    or the config dataclass; `overrides` are `key=value` strings. With
    `annotating=False` the policy only draws from stored annotations (a
    learned policy then loads no network)."""
    cls = get(name)
    if isinstance(config, cls.config_cls):
        config = dataclasses.asdict(config)
    cfg = build_dataclass(cls.config_cls, config or {}, overrides, where=f"policy {name}")
    return cls(cfg, tokenizer_info, annotating=annotating)

"""The one config mechanism: dataclasses, filled from YAML and from dotted
`key=value` overrides on the command line, validated in `__post_init__`.

    cfg = load_config(PretrainConfig, "configs/pretrain/tiny_cpu.yaml", ["optim.lr=3e-4"])

Unknown keys and values of the wrong type are errors that name the key and
where it came from; nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass."""


def parse_overrides(overrides) -> dict[str, Any]:
    """`["a.b=1", "c=[x, y]"]` -> `{"a": {"b": 1}, "c": ["x", "y"]}` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in overrides or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value")
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: {key}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {key} must be one of {typing.get_args(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        return build_dataclass(tp, value, (), where=where, prefix=f"{key}.")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where}: {key} must be {getattr(tp, '__name__', tp)}, got {value!r}")


def build_dataclass(cls, data: dict | None, overrides=(), where: str = "config", prefix: str = ""):
    """Build `cls` from a mapping plus `key=value` overrides, checking keys and types."""
    data = _merge(data or {}, parse_overrides(overrides))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(prefix + u for u in unknown)}; "
            f"known: {', '.join(prefix + k for k in fields)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k, where) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def read_yaml_mapping(path: str | Path) -> dict:
    """The top-level mapping of a YAML config file, or a ConfigError naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(cls, path: str | Path | None = None, overrides=()):
    """Load a YAML file (may be None) into `cls`, then apply overrides."""
    data = read_yaml_mapping(path) if path is not None else {}
    return build_dataclass(cls, data, overrides, where=str(path) if path else "config")


def to_dict(cfg) -> dict:
    """A JSON/YAML-friendly dict of a config dataclass (tuples become lists)."""

    def conv(v):
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dataclasses.asdict(cfg))


def recipe_config(cls, argv, prog: str, doc: str, shortcuts=()):
    """A recipe's command line: `--config FILE`, `--some-field VALUE` for each
    field named in `shortcuts`, then dotted `key=value` overrides (which win).
    Returns the validated `cls`. `--local_rank` (the deepspeed launcher's) is
    accepted and ignored."""
    import argparse

    ap = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", help=f"YAML file of {cls.__name__} fields")
    for name in shortcuts:
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"shortcut for {name}=...")
    ap.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    args = ap.parse_args(argv)
    given = [f"{n}={getattr(args, n)}" for n in shortcuts if getattr(args, n) is not None]
    return load_config(cls, args.config, given + args.overrides)

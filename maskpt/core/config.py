"""The one config mechanism: dataclasses, filled from YAML and from dotted
`key=value` overrides on the command line, validated in `__post_init__`.

    cfg = load_config(PretrainConfig, "configs/pretrain/tiny_cpu.yaml", ["optim.lr=3e-4"])

Override values are kept as typed on the command line until their field's
type is known: a `str` field takes them verbatim (`text=a: b` stays a
string), any other field parses them as YAML (`lr=3e-4`, `shards=[a, b]`).
Unknown keys and values of the wrong type are errors that name the key and
where it came from; nothing is silently ignored. Each field's docstring (the
string literal under it) is its documentation: `field_docs` reads them, and
`--help` of every command lists them.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import re
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from maskpt.core.errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or override that does not fit its dataclass."""


@dataclasses.dataclass(frozen=True)
class Raw:
    """A value as typed on the command line, parsed once its field's type is known."""

    text: str

    def parsed(self) -> Any:
        return yaml.safe_load(self.text) if self.text.strip() else ""


def resolve(value: Any) -> Any:
    """`value` with every `Raw` inside parsed as YAML."""
    if isinstance(value, Raw):
        return value.parsed()
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v) for v in value]
    return value


def require_at_least_one(cfg, *keys: str) -> None:
    """A config's `__post_init__` check: each field named is >= 1
    (a ValueError naming the first that is not, with its value)."""
    for key in keys:
        value = getattr(cfg, key)
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")


def set_dotted(out: dict, key: str, value: Any, where: str = "override") -> None:
    """`out[a][b] = value` for key `a.b`."""
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where} {key!r} conflicts with another override")
    node[parts[-1]] = value


def parse_overrides(overrides) -> dict[str, Any]:
    """`["a.b=1", "c=[x, y]"]` -> `{"a": {"b": Raw("1")}, "c": Raw("[x, y]")}`."""
    out: dict[str, Any] = {}
    for item in overrides or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value")
        set_dotted(out, key, Raw(raw), f"override {item!r}:")
    return out


def merge(base: dict, extra: dict) -> dict:
    """`extra` over `base`, recursing into mappings present in both."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _coerce_union(value: Any, tp: Any, key: str, where: str) -> Any:
    args = typing.get_args(tp)
    plain = value.parsed() if isinstance(value, Raw) else value
    if plain is None and type(None) in args:
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


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, key, where)
    if isinstance(value, Raw):
        if tp is str:
            return value.text
        value = value.parsed()
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
        return resolve(value)
    if tp is Any:
        return resolve(value)
    return _coerce_scalar(value, tp, key, where)


def _coerce_scalar(value: Any, tp: Any, key: str, where: str) -> Any:
    if tp is bool and isinstance(value, bool):
        return value
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
    kind = "true or false" if tp is bool else getattr(tp, "__name__", tp)
    raise ConfigError(f"{where}: {key} must be {kind}, got {value!r}")


def known_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key of `cls`, nested dataclass fields included."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out += known_keys(hints[f.name], f"{prefix}{f.name}.")
    return out


def build_dataclass(cls, data: dict | None, overrides=(), where: str = "config", prefix: str = ""):
    """Build `cls` from a mapping plus `key=value` overrides, checking keys and types."""
    data = merge(data or {}, parse_overrides(overrides))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        keys = known_keys(cls, prefix)
        close = difflib.get_close_matches(prefix + unknown[0], keys, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(prefix + u for u in unknown)}{hint}; "
            f"known: {', '.join(prefix + k for k in fields)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k, where) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        message = str(exc)
        if prefix and not message.startswith(prefix):  # a nested check may name its path itself
            message = prefix + message
        raise ConfigError(f"{where}: {message}") from exc


def read_yaml_mapping(path: str | Path) -> dict:
    """The top-level mapping of a YAML config file, or a ConfigError naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(cls, path: str | Path | None = None, overrides=()):
    """Load a YAML file (may be None) into `cls`, then apply overrides."""
    data = read_yaml_mapping(path) if path is not None else {}
    where = str(path) if path else "config"
    return blaming_overrides(
        lambda: build_dataclass(cls, data, overrides, where=where),
        where,
        [str(o) for o in overrides],
    )


def blaming_overrides(build, where: str, items: list[str]):
    """`build()`; a ConfigError that names a key the command line set (`KEY=VALUE`
    in `items`) blames that item instead of the file `where`."""

    try:
        return build()
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{where}: ")
        keys = [(item, item.split("=", 1)[0].strip()) for item in items]
        named = [
            (i, k) for i, k in keys if k and re.search(rf"(?<![\w.]){re.escape(k)}\b", message)
        ]
        first = [(i, k) for i, k in named if message.startswith(k)]
        for item, _ in first or named:
            raise ConfigError(f"command line {item}: {message}") from exc
        raise


def to_dict(cfg) -> dict:
    """A JSON/YAML-friendly dict of a config dataclass (tuples become lists)."""

    def conv(v):
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dataclasses.asdict(cfg))


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """Field name -> the docstring written under it in the class body (base
    classes first, so a subclass may override)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        last = None
        for node in tree.body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                last = node.target.id
            elif (
                last
                and isinstance(node, ast.Expr)
                and isinstance(getattr(node, "value", None), ast.Constant)
                and isinstance(node.value.value, str)
            ):
                docs[last] = " ".join(node.value.value.split())
                last = None
            else:
                last = None
    return docs


def describe_fields(cls, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, docstring) of every field, nested dataclasses expanded."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.append((prefix + f.name, "", docs.get(f.name, "")))
            out += describe_fields(tp, f"{prefix}{f.name}.")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        out.append((prefix + f.name, repr(default), docs.get(f.name, "")))
    return out

"""The one command line of every job: a config dataclass filled from

    --config FILE          a YAML file of its fields
    --some-field VALUE     a flag per top-level field (lists take several values)
    KEY=VALUE, --set KEY=VALUE
                           dotted overrides (`optim.lr=3e-4`, `data.shards=[a, b]`)

in any order on the line; later sources win: file < flags < overrides.
`--help` lists every field, nested ones included, with its default and the
docstring written under it. Unknown keys are refused by name.

    args = ConfigArgs(PretrainConfig, "maskpt pretrain", __doc__)
    args.parser.add_argument("--resume", action="store_true")
    cfg, ns = args.parse(argv)
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import textwrap
import types
import typing
from typing import Any

from maskpt.core.config import (
    ConfigError,
    Raw,
    blaming_overrides,
    build_dataclass,
    describe_fields,
    merge,
    parse_overrides,
    read_yaml_mapping,
    set_dotted,
)
from maskpt.core.errors import exit_on_user_error

_OVERRIDE = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*=")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help ends with the config's fields, built only when asked."""

    fields_help: typing.Callable[[], str] | None = None

    def format_help(self) -> str:
        text = super().format_help()
        return text + ("\n" + self.fields_help() if self.fields_help else "")


def _kind(tp) -> str:
    """How a field's flag takes values: flag (bool; `bool | str` too: `--deepspeed` alone
    or `--deepspeed ds.json`), list, scalar, or none (nested)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) > 1 and bool in args:
            return "flag"
        return _kind(args[0]) if len(args) == 1 else "scalar"
    if dataclasses.is_dataclass(tp) or origin is dict or tp is dict:
        return "none"
    if origin in (tuple, list):
        return "list"
    return "flag" if tp is bool else "scalar"


class ConfigArgs:
    """The parser of one config-driven command; add extra flags to `.parser`."""

    def __init__(
        self,
        cls,
        prog: str,
        description: str = "",
        epilog: str = "",
        aliases: dict[str, str] | None = None,
        flags: bool = True,
        positionals: tuple[tuple[str, str], ...] = (),
    ):
        self.cls, self.prog = cls, prog
        self.hints = typing.get_type_hints(cls)
        self.fields = [f.name for f in dataclasses.fields(cls) if f.init]
        self.parser = _Parser(
            prog=prog,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.parser.fields_help = self._fields_help
        self.parser.add_argument(
            "--config", metavar="FILE", help=f"YAML file of {cls.__name__} fields"
        )
        self.flag_keys: dict[str, tuple[str, str]] = {}  # dest -> (dotted key, kind)
        if flags:
            for name in self.fields:
                kind = _kind(self.hints[name])
                if kind != "none":
                    self._add_flag(f"--{name.replace('_', '-')}", name, kind)
        for flag, key in (aliases or {}).items():
            top = key.split(".")[0]
            kind = _kind(self.hints[top]) if key == top else "scalar"
            self._add_flag(flag, key, kind)
        self.parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config field (repeatable); the same as a bare KEY=VALUE",
        )
        self.parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)
        for name, help_ in positionals:  # before the overrides, which take the rest
            self.parser.add_argument(name, help=help_)
        self.parser.add_argument(
            "overrides",
            nargs="*",
            metavar="KEY=VALUE",
            help="dotted config overrides, anywhere on the line (see the fields below)",
        )

    def _add_flag(self, flag: str, key: str, kind: str) -> None:
        dest = "cfg__" + key.replace(".", "__")
        self.flag_keys[dest] = (key, kind)
        doc = f"sets {key}"
        if kind == "list":
            self.parser.add_argument(
                flag,
                dest=dest,
                nargs="+",
                action="extend",
                metavar="VALUE",
                help=doc + " (one or more; repeatable)",
            )
        elif kind == "flag":
            self.parser.add_argument(
                flag,
                dest=dest,
                nargs="?",
                const="true",
                metavar="BOOL",
                help=doc + " (alone: true)",
            )
        else:
            self.parser.add_argument(flag, dest=dest, metavar="VALUE", help=doc)

    def _fields_help(self) -> str:
        lines = ["config fields (KEY=VALUE anywhere on the line; nested keys with dots):"]
        for key, default, doc in describe_fields(self.cls):
            head = f"  {key}" + (f" = {default}" if default else "")
            lines.append(head)
            if doc:
                lines += textwrap.wrap(
                    doc, width=94, initial_indent="      ", subsequent_indent="      "
                )
        return "\n".join(lines) + "\n"

    def _is_override(self, item: str) -> bool:
        return bool(_OVERRIDE.match(item)) and item.split("=")[0].split(".")[0] in self.fields

    def main(self, argv, run: typing.Callable[[Any, argparse.Namespace], int | None]) -> int:
        """Parse `argv` and call `run(cfg, namespace)`; user errors (bad
        arguments included) become one line and exit status 2."""

        return exit_on_user_error(self.prog, lambda: run(*self.parse(argv)))

    def parse(self, argv=None, presets=None) -> tuple[Any, argparse.Namespace]:
        """(validated config, the namespace with any extra flags); ConfigError on
        bad input. `presets(ns)` may return overrides applied right after the
        config file (e.g. the demo's --size)."""
        ns = self.parser.parse_intermixed_args(argv)
        data = read_yaml_mapping(ns.config) if ns.config else {}
        if presets is not None:
            data = merge(data, parse_overrides(presets(ns)))
        flags: dict[str, Any] = {}
        moved: list[str] = []
        for dest, (key, kind) in self.flag_keys.items():
            value = getattr(ns, dest)
            if value is None:
                continue
            if kind == "list":  # `--inputs a b lr=1` : lr=1 is an override, not an input
                moved += [v for v in value if self._is_override(v)]
                value = [Raw(v) for v in value if not self._is_override(v)]
                if not value:
                    continue
            else:
                value = Raw(value)
            set_dotted(flags, key, value, "flag")
        bad = [o for o in ns.overrides if "=" not in o]
        if bad:
            raise ConfigError(f"{self.prog}: {bad[0]!r} is neither an option nor KEY=VALUE")
        data = merge(merge(data, flags), parse_overrides([*moved, *ns.overrides, *ns.set]))
        where = ns.config or self.prog
        items = [*moved, *ns.overrides, *ns.set]
        items += [
            f"{k}={getattr(ns, d)}"
            for d, (k, _) in self.flag_keys.items()
            if getattr(ns, d) is not None
        ]
        return blaming_overrides(
            lambda: build_dataclass(self.cls, data, where=where), where, items
        ), ns

"""Command-line options generated from settings dataclasses (``config_fields.setting``):
each field with a flag becomes one option with the field's default, choices and help, and
the parsed arguments become the settings object again. Nothing is typed twice."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterator
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Any

from centernet.config_fields import described
from centernet.errors import FLAG_NAMES


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per flagged field of ``cls`` and of the settings classes it nests."""
    for path, item, kind in _flagged(cls):
        declared = described(item) or {}
        flag = declared["flag"]
        FLAG_NAMES[path] = flag.lstrip("-")
        if declared["enables"] and "." in path:  # `calibration`: the option that makes it
            FLAG_NAMES[path.rsplit(".", 1)[0]] = flag.lstrip("-")
        names = [flag, *declared.get("aliases", ())]
        help_text = declared["help"]
        if kind is bool:
            action = "store_false" if _default(item) is True else "store_true"
            parser.add_argument(*names, dest=_dest(flag), action=action, help=help_text)
            continue
        default = None if declared["enables"] or declared["required"] else _default(item)
        if default is MISSING:
            default = None
        parser.add_argument(
            *names,
            dest=_dest(flag),
            type=_parser_for(kind, declared.get("minimum")),
            default=_shown(default),
            choices=declared.get("choices"),
            metavar=declared.get("metavar"),
            required=declared.get("required", False),
            help=help_text,
        )


def config_from_arguments(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """The ``cls`` instance the parsed ``args`` describe (``given`` fields win). An
    optional nested settings class is made when its enabling option was given."""
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        if item.name in given:
            values[item.name] = given[item.name]
            continue
        nested = _nested_class(hints[item.name])
        declared = described(item) or {}
        if nested is not None:
            if _enabled(nested, args):
                values[item.name] = config_from_arguments(nested, args)
            continue
        if declared.get("flag"):
            value = getattr(args, _dest(declared["flag"]))
            if value is None and not declared["enables"]:
                value = _default(item)  # an option left out: the declared default
            if value is not MISSING:
                values[item.name] = value
    return cls(**values)


def _enabled(cls: type, args: argparse.Namespace) -> bool:
    """Whether an optional settings class is asked for: its enabling option was given
    (a class without one is always made)."""
    for item in fields(cls):
        declared = described(item) or {}
        if declared.get("enables"):
            return getattr(args, _dest(declared["flag"])) is not None
    return True


def _flagged(cls: type, prefix: str = "") -> Iterator[tuple[str, Field, Any]]:
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        nested = _nested_class(hints[item.name])
        if nested is not None:
            yield from _flagged(nested, f"{prefix}{item.name}.")
            continue
        declared = described(item)
        if declared and declared.get("flag"):
            yield f"{prefix}{item.name}", item, _plain_type(hints[item.name])


def _nested_class(hint: Any) -> type | None:
    """The settings class a field holds (``X`` or ``X | None``), or None."""
    for option in typing.get_args(hint) or (hint,):
        if isinstance(option, type) and is_dataclass(option):
            return option
    return None


def _plain_type(hint: Any) -> Any:
    """int, float, str, bool or tuple behind an annotation such as ``int | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _plain_type(options[0])
    if typing.get_origin(hint) is tuple:
        return tuple
    return hint


def _parser_for(kind: Any, minimum: float | None):
    if kind is tuple:
        return _names
    convert = {int: int, float: float}.get(kind, str)
    if minimum is None or convert is str:
        return convert

    def bounded(text: str) -> Any:
        value = convert(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum:g}: {text}")
        return value

    bounded.__name__ = convert.__name__  # argparse names it in "invalid int value"
    return bounded


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _default(item: Field) -> Any:
    if item.default_factory is not MISSING:  # type: ignore[misc]
        return item.default_factory()  # type: ignore[misc]
    return item.default


def _shown(default: Any) -> Any:
    """Defaults as the command line writes them (a tuple of names: comma-separated)."""
    if isinstance(default, tuple):
        return ",".join(default) if default else None
    return default


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")

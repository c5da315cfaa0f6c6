"""Settings fields that carry their own help, choices and command-line flag.

A settings dataclass declares each default, allowed value and help text once, beside the
field (``setting(...)``); the command line is generated from it (``cli/config_args.py``),
so a default is never typed twice. Layer 0: the settings of every layer use it.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, field
from typing import Any

#: The metadata key under which a field's command-line description lives.
KEY = "centernet"


def setting(
    default: Any = MISSING,
    *,
    help: str,
    flag: str | None = None,
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    minimum: float | None = None,
    factory: Any = None,
    enables: bool = False,
    required: bool = False,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A dataclass field with its help text, and, with ``flag``, its command-line option.

    ``choices`` are the allowed values (checked by the CLI and by ``check_choices``);
    ``minimum`` the smallest number allowed. ``enables`` marks the field whose presence on
    the command line creates an optional nested settings object (its option defaults to
    off); ``required`` a field the command line must give.
    """
    metadata = {
        KEY: {
            "help": help,
            "flag": flag,
            "choices": choices,
            "metavar": metavar,
            "minimum": minimum,
            "enables": enables,
            "required": required,
            "aliases": aliases,
        }
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def described(item: Field) -> dict[str, Any] | None:
    """What ``setting`` declared about a field, or None for a plain field."""
    return item.metadata.get(KEY)

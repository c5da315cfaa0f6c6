"""The ``centernet`` command: parse arguments, call the library, print a summary.

Expected failures (CenterNetError) end as one line on stderr and exit status 2; a run in
which some images could not be read exits 1 after finishing the rest.

Each command group is a module with a ``register(add_command)`` function; to add one,
write the module and list it in ``COMMAND_MODULES`` (the order is the order in --help).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from centernet import __version__
from centernet.cli import data, detect, measure, model, serve
from centernet.cli.common import EXIT_ERROR
from centernet.errors import CenterNetError, as_command_line

COMMAND_MODULES = (model, detect, measure, serve, data)


class _HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default in --help, except for flags and options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" in text
            or not action.option_strings
            or action.default in (None, False, argparse.SUPPRESS)
        ):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet", description="CenterNet from checkpoint to fast inference."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    # every subcommand's --help shows the defaults
    add_command = functools.partial(commands.add_parser, formatter_class=_HelpFormatter)
    for module in COMMAND_MODULES:
        module.register(add_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CenterNetError as exc:
        print(f"centernet: error: {as_command_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("centernet: interrupted", file=sys.stderr)
        return 130

"""The ``centernet`` command: parse arguments, call the library, print a summary.

Expected failures (CenterNetError) end as one line on stderr and exit status 2; a run in
which some images could not be read exits 1 after finishing the rest.

Each command group is a module with a ``register(add_command)`` function; to add one,
write the module and list it in ``COMMAND_MODULES`` (the order is the order in --help).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from centernet import __version__
from centernet.cli import data, detect, measure, model, serve
from centernet.cli.common import EXIT_ERROR
from centernet.cli.progress import configure as configure_progress
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


QUIET_HELP = (
    "no progress bars or progress lines on stderr (errors, warnings and the summary still "
    "print); before or after the command"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet", description="CenterNet from checkpoint to fast inference."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    def add_command(name: str, **kwargs) -> argparse.ArgumentParser:
        # every subcommand's --help shows the defaults, and every one takes --quiet
        command = commands.add_parser(name, formatter_class=_HelpFormatter, **kwargs)
        # SUPPRESS: left out after the command, the main parser's value stands
        command.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP
        )
        return command

    for module in COMMAND_MODULES:
        module.register(add_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_progress(quiet=args.quiet)
    try:
        return args.func(args)
    except CenterNetError as exc:
        print(f"centernet: error: {as_command_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("centernet: interrupted", file=sys.stderr)
        return 130

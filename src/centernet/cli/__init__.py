"""The ``centernet`` command, one module per command group.

``parser.py`` builds the parser and runs a command (exit codes, error handling);
``common.py`` holds what several commands share; ``model.py`` (export, build),
``detect.py`` (detect, eval), ``measure.py`` (bench, report, demo) and ``data.py``
(synth, train) each hold their commands' arguments and ``cmd_*`` functions.
"""

from __future__ import annotations

from centernet.cli.common import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED
from centernet.cli.parser import build_parser, main

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_SOME_FAILED", "build_parser", "main"]

"""The ``liveaug`` command: one entry point, one module per subcommand in ``liveaug.commands``.

Errors the user can fix (:class:`~liveaug.errors.LiveaugError`) print as one line and exit 2;
``--debug`` shows the traceback instead. Subcommands import their heavy dependencies (Qt,
onnxruntime, harvesters) lazily, so ``liveaug --help`` is quick and headless commands never
load Qt.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from liveaug import __version__
from liveaug.errors import LiveaugError

#: Subcommand name -> module in ``liveaug.commands`` with ``HELP``, ``add_arguments(parser)`` and
#: ``run(args) -> int``. Order is the order ``--help`` lists them in.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "view": "view",
    "simulate": "simulate",
    "devices": "devices",
    "record": "record",
    "bench": "bench",
    "batch": "batch",
    "models": "models",
    "train": "train",
    "finetune": "finetune",
    "replay": "replay",
    "analysis": "analysis",
}


VERBOSE_HELP = "also log each event and the libraries' progress messages (Dask …)"
#: Loggers quiet by default: each event goes to its file and the window, not the terminal.
QUIET_BY_DEFAULT = ("liveaug.analysis.events",)


class ProgressAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines on stderr that never glue onto a progress bar: tqdm clears the bar, writes
    the line, and draws the bar again below it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_logging(*, debug: bool = False, verbose: bool = False) -> None:
    """Warnings and liveaug's own summaries by default; events and libraries' INFO with
    ``--verbose``; everything with ``--debug``."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    quiet = not (debug or verbose)
    logging.getLogger("liveaug").setLevel(logging.DEBUG if debug else logging.INFO)
    for name in QUIET_BY_DEFAULT:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


class HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help unless its text already says it, or there is
    nothing worth saying (no default, a flag that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        d = action.default
        if (
            not text
            or not action.option_strings
            or "default" in text.lower()
            or d is None
            or isinstance(d, bool)
            or d is argparse.SUPPRESS
            or d == []
        ):
            return text
        shown = " ".join(map(str, d)) if isinstance(d, list | tuple) else str(d)
        return f"{text} (default: {shown.replace('%', '%%')})"


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line grammar (each subcommand adds its own arguments)."""
    parser = argparse.ArgumentParser(
        prog="liveaug",
        description=(
            "liveaug — a real-time augmented microscope. Streams brightfield from a GenICam "
            "camera, a recorded session or the built-in simulated microscope, and turns every "
            "frame into "
            "virtual stains, cell-cycle phase and apoptosis calls, measured per cell."
        ),
    )
    parser.add_argument("--version", action="version", version=f"liveaug {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"liveaug.commands.{module_name}")
        p = sub.add_parser(
            name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter
        )
        module.add_arguments(p)
        p.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(debug=args.debug, verbose=args.verbose)
    try:
        return int(args._run(args) or 0)
    except LiveaugError as exc:
        if args.debug:
            raise
        print(f"liveaug {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `liveaug … | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"liveaug {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

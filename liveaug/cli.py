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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"liveaug.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except LiveaugError as exc:
        if args.debug:
            raise
        print(f"liveaug {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"liveaug {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``cronctl`` command line: one module per subcommand under ``reconciler.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from reconciler import __version__
from reconciler.errors import CronctlError

COMMANDS = ("validate", "bootstrap", "reconcile", "serve", "list", "status", "trigger", "logs",
            "schedule", "resume")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronctl",
        description="Container cron jobs on AWS, run the GitOps way. "
        "Cron files in Git are the desired state; cronctl makes AWS match them.",
    )
    parser.add_argument("--version", action="version", version=f"cronctl {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"reconciler.commands.{name}").register(subparsers)
    importlib.import_module("reconciler.commands.import_").register(subparsers)  # `import`
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from reconciler import logs

    logs.configure(level=args.log_level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CronctlError as exc:
        print(f"cronctl {args.command}: {exc}", file=sys.stderr)
        return 1

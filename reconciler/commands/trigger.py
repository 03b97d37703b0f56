"""`cronctl trigger`."""

from __future__ import annotations

import argparse
import sys

HELP = "trigger (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("trigger", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl trigger: not available yet", file=sys.stderr)
    return 1

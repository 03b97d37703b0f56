"""`cronctl list`."""

from __future__ import annotations

import argparse
import sys

HELP = "list (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("list", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl list: not available yet", file=sys.stderr)
    return 1

"""`cronctl bootstrap`."""

from __future__ import annotations

import argparse
import sys

HELP = "bootstrap (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("bootstrap", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl bootstrap: not available yet", file=sys.stderr)
    return 1

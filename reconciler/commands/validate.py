"""`cronctl validate`."""

from __future__ import annotations

import argparse
import sys

HELP = "validate (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl validate: not available yet", file=sys.stderr)
    return 1

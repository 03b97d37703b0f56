"""`cronctl serve`."""

from __future__ import annotations

import argparse
import sys

HELP = "serve (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl serve: not available yet", file=sys.stderr)
    return 1

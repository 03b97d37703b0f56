"""`cronctl reconcile`."""

from __future__ import annotations

import argparse
import sys

HELP = "reconcile (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("reconcile", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl reconcile: not available yet", file=sys.stderr)
    return 1

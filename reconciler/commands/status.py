"""`cronctl status`."""

from __future__ import annotations

import argparse
import sys

HELP = "status (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl status: not available yet", file=sys.stderr)
    return 1

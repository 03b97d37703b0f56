"""`cronctl logs`."""

from __future__ import annotations

import argparse
import sys

HELP = "logs (not available yet)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("logs", help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("cronctl logs: not available yet", file=sys.stderr)
    return 1

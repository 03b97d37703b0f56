"""`cronctl trigger NAME [--force]`: start a manual run now."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from reconciler.commands.common import add_aws_flags, namespace_settings, settings_from_args
from reconciler.errors import CronctlError

HELP = "start a manual run of a cron now"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "trigger", help=HELP,
        description=HELP + ". The cron's concurrency policy applies unless --force.")
    parser.add_argument("name", metavar="NAME", help="the cron's name")
    parser.add_argument("--force", action="store_true",
                        help="ignore the concurrency policy (and suspend) and start anyway")
    add_aws_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.aws import AwsClients
    from reconciler.service.execution.dispatch import (
        SKIPPED,
        STARTED,
        SUSPENDED,
        UNKNOWN_CRON,
        Dispatcher,
    )

    settings = settings_from_args(args)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    clients = AwsClients(settings)
    try:
        settings = namespace_settings(clients, settings, "trigger")
        outcome = Dispatcher(clients, settings).dispatch(
            args.name, now, trigger="manual", force=args.force)
    except CronctlError as exc:
        print(f"cronctl trigger: {exc}", file=sys.stderr)
        return 1
    line = f"{args.name}: {outcome.status}"
    if outcome.execution_id:
        line += f" (execution {outcome.execution_id})"
    if outcome.task_arn:
        line += f" task {outcome.task_arn}"
    if outcome.reason:
        line += f": {outcome.reason}"
    if outcome.status == UNKNOWN_CRON:
        line += f" in namespace {settings.namespace!r}"
    elif outcome.status in (SKIPPED, SUSPENDED):
        line += " (--force starts it anyway)"
    print(line, file=sys.stdout if outcome.status == STARTED else sys.stderr)
    return 0 if outcome.status == STARTED else 1

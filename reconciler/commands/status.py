"""`cronctl status NAME`: a cron's state, schedule, next run and last executions."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from reconciler.commands.common import (
    add_aws_flags,
    add_output_flag,
    namespace_settings,
    settings_from_args,
)
from reconciler.core import status_render
from reconciler.errors import CronctlError

HELP = "show a cron's status and its last executions"


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help=HELP, description=HELP)
    parser.add_argument("name", metavar="NAME", help="the cron's name")
    parser.add_argument("--limit", type=int, default=10,
                        help="how many executions to show (default 10)")
    add_output_flag(parser)
    add_aws_flags(parser)
    parser.set_defaults(func=run)


def next_run(schedule: str, timezone: str, now: datetime) -> datetime | None:
    """The next fire time, or None when it cannot be computed."""
    from reconciler.core import schedule as schedule_module

    try:
        times = schedule_module.next_fire_times(schedule, timezone or "UTC", now, 1)
    except Exception:  # not implemented yet, invalid expression or unknown zone: show "-"
        return None
    return times[0] if times else None


def next_run_of(spec: dict, now: datetime) -> datetime | None:
    """The cron's next scheduled start; None for a suspended cron (it starts nothing)."""
    if spec.get("suspend"):
        return None
    return next_run(spec.get("schedule", ""), spec.get("timezone", "UTC"), now)


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.executions import ExecutionStore
    from reconciler.adapters.registry_read import RegistryReader

    if args.limit < 1:
        print("cronctl status: --limit must be at least 1", file=sys.stderr)
        return 2
    settings = settings_from_args(args)
    clients = AwsClients(settings)
    settings = namespace_settings(clients, settings, "status")
    try:
        item = RegistryReader(clients, settings).get(args.name)
        if item is None:
            print(f"cronctl status: no cron named {args.name!r} in namespace "
                  f"{settings.namespace!r}", file=sys.stderr)
            return 1
        executions = ExecutionStore(clients, settings).recent(args.name, args.limit)
    except CronctlError as exc:
        print(f"cronctl status: {exc}", file=sys.stderr)
        return 1
    spec = item.spec or {}
    view = status_render.CronStatus(
        name=item.name, schedule=spec.get("schedule", "-"), suspended=bool(spec.get("suspend")),
        next_run=next_run_of(spec, datetime.now(UTC)), executions=executions)
    if args.output == "json":
        print(json.dumps(status_render.status_json(view), indent=2))
    else:
        sys.stdout.write(status_render.status_text(view))
    return 0

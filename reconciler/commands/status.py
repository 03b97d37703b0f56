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
from reconciler.core.alerts.decide import describe_pause, describe_state
from reconciler.core.status import render as status_render
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


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.alert_states import AlertStates
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
        store = ExecutionStore(clients, settings)
        executions = store.recent(args.name, args.limit)
        # Open runs older than the ones shown still give the cron's state (a run in progress
        # behind newer SKIPPED fires): the sparse index of open executions has them all.
        open_runs = tuple(e for e in store.unfinished()
                          if e.cron == args.name and not e.terminal)
        alert = AlertStates(clients, settings).get(args.name)
    except CronctlError as exc:
        print(f"cronctl status: {exc}", file=sys.stderr)
        return 1
    spec = item.spec
    now = datetime.now(UTC)
    view = status_render.CronStatus(
        name=item.name, schedule=spec.schedule, suspended=spec.suspend,
        next_run=status_render.next_run_of(spec, now, item.schedule_since),
        next_run_note=status_render.next_run_note(spec, now),
        executions=executions, timezone=spec.timezone, open_runs=open_runs,
        alert=alert if alert.failing else None,
        alert_text=describe_state(alert, spec), paused_text=describe_pause(alert, spec))
    if args.output == "json":
        print(json.dumps(status_render.status_json(view), indent=2))
    else:
        sys.stdout.write(status_render.status_text(view))
    return 0

"""`cronctl list`: every cron with its schedule, state (a run in progress, else the last run's
status; `(PAUSED)` when suspend-after-failures paused it), last run and next run."""

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
from reconciler.core.status import render as status_render
from reconciler.errors import CronctlError

HELP = "list the crons with their last and next runs"


def register(subparsers) -> None:
    parser = subparsers.add_parser("list", help=HELP, description=HELP)
    add_output_flag(parser)
    add_aws_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.alert_states import AlertStates
    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.executions import ExecutionStore
    from reconciler.adapters.registry_read import RegistryReader

    settings = settings_from_args(args)
    clients = AwsClients(settings)
    settings = namespace_settings(clients, settings, "list")
    now = datetime.now(UTC)
    rows = []
    try:
        items = list(RegistryReader(clients, settings).all())
        store = ExecutionStore(clients, settings)
        open_runs: dict[str, list] = {}
        for run in store.unfinished():  # one query: every open run of the namespace
            open_runs.setdefault(run.cron, []).append(run)
        alerts = AlertStates(clients, settings).many([item.name for item in items])
        for item in items:
            spec = item.spec
            latest = store.recent(item.name, 1)
            rows.append(status_render.CronSummary(
                name=item.name, schedule=spec.schedule, suspended=spec.suspend,
                next_run=status_render.next_run_of(spec, now, item.schedule_since),
                last=status_render.current_execution([*latest, *open_runs.get(item.name, [])]),
                alert=alerts.get(item.name),
                paused=item.name in alerts and alerts[item.name].paused_for(spec.spec_hash())))
    except CronctlError as exc:
        print(f"cronctl list: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(status_render.list_json(rows), indent=2))
    else:
        sys.stdout.write(status_render.list_text(rows))
    return 0

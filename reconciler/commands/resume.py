"""`cronctl resume NAME`: end the pause of a cron that suspend-after-failures paused."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.common import add_aws_flags, namespace_settings, settings_from_args
from reconciler.core.alerts.decide import describe_pause, resumed
from reconciler.errors import CronctlError

HELP = "resume a cron that suspend-after-failures paused"
DESCRIPTION = """\
A cron with `suspend-after-failures: N` is paused after N consecutive failed runs: its
scheduled runs are recorded SKIPPED and start nothing. The pause ends with the next commit
that changes the cron's file, or with this command; the count of failures starts again.

Exit status: 0 resumed; 1 no such cron, the cron is not paused, or AWS could not be read or
written; 2 wrong arguments.
"""
ATTEMPTS = 5


def register(subparsers) -> None:
    parser = subparsers.add_parser("resume", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", metavar="NAME", help="the cron's name")
    add_aws_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.alert_states import AlertStates
    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.registry_read import RegistryReader

    settings = settings_from_args(args)
    clients = AwsClients(settings)
    try:
        settings = namespace_settings(clients, settings, "resume")
        item = RegistryReader(clients, settings).get(args.name)
        if item is None:
            print(f"cronctl resume: no cron named {args.name!r} in namespace "
                  f"{settings.namespace!r}", file=sys.stderr)
            return 1
        states = AlertStates(clients, settings)
        for _ in range(ATTEMPTS):
            state = states.get(args.name)
            pause = describe_pause(state, item.spec)
            if pause is None:
                why = ("it has no suspend-after-failures" if
                       item.spec.suspend_after_failures is None else "it runs as scheduled")
                print(f"cronctl resume: cron {args.name!r} is not paused ({why})",
                      file=sys.stderr)
                return 1
            if states.replace(state, resumed(state)):
                print(f"{args.name}: resumed (was {pause.split(';')[0]}); its next "
                      "scheduled run starts")
                return 0
        print(f"cronctl resume: the state of {args.name!r} kept changing; try again",
              file=sys.stderr)
        return 1
    except CronctlError as exc:
        print(f"cronctl resume: {exc}", file=sys.stderr)
        return 1

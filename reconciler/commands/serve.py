"""`cronctl serve`: the daemon (reconcile loop, SNS dispatch endpoint, ECS event consumer)."""

from __future__ import annotations

import argparse
import os
import sys

from reconciler.commands.common import add_aws_flags, add_source_flags, settings_from_args
from reconciler.errors import CronctlError
from reconciler.settings import help_text

HELP = "run the daemon: reconcile loop, SNS dispatch endpoint and ECS event consumer"
DESCRIPTION = """\
Run the cronctl daemon until SIGTERM/SIGINT. In one process:
  - the reconcile loop: every --interval seconds (and on SIGHUP or the CI webhook) make AWS
    match the cron files; with several replicas only the lease holder reconciles; a pass at
    the applied commit reads nothing, and every --drift-check-interval seconds a full pass
    reads every resource and repairs drift;
  - POST /sns: verified SNS deliveries of schedules start ECS tasks (GET /healthz, /readyz);
  - POST /reconcile (only when CRONCTL_WEBHOOK_TOKEN is set): CI asks for a pass now, with
    `Authorization: Bearer $CRONCTL_WEBHOOK_TOKEN` and an optional JSON body {"commit": SHA};
  - the event consumer: ECS task state changes from SQS become execution records.

--embedded starts an AWS emulator in this process, bootstraps the namespace into it, reconciles
the repo's cron files and runs the schedules and containers locally, so the whole system can be
seen working on one machine with no AWS account: `cronctl status NAME` (with AWS_ENDPOINT_URL
set to the printed emulator URL) shows real executions within a minute.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(parser)
    add_aws_flags(parser)
    parser.add_argument("--listen", help=help_text("listen"))
    parser.add_argument("--interval", dest="interval_s", type=float, help=help_text("interval_s"))
    parser.add_argument("--drift-check-interval", dest="drift_check_s", type=float,
                        help=help_text("drift_check_s"))
    parser.add_argument("--deep-check-period", dest="deep_check_s", type=float,
                        help=help_text("deep_check_s"))
    parser.add_argument("--history-days", dest="history_days", type=int,
                        help="days execution records are kept (default 30)")
    parser.add_argument("--embedded", action="store_true",
                        help="run against an in-process AWS emulator, with local schedules and containers")
    parser.set_defaults(func=run)


class WhereToLook:
    """Prints, once the endpoint listens, the addresses to open first (embedded mode)."""

    def __init__(self, built) -> None:
        self.built = built

    def lines(self) -> list[str]:
        url = self.built.http.url
        emulator = self.built.settings.endpoint_url
        return [
            "Where to look first:",
            f"  status page:   {url}/",
            f"  endpoint:      {url} (POST /sns: the schedules' deliveries; GET /healthz)",
            f"  AWS emulator:  {emulator}",
            f"  CLI:           export AWS_ENDPOINT_URL={emulator} AWS_ACCESS_KEY_ID=embedded "
            "AWS_SECRET_ACCESS_KEY=embedded",
            "                 cronctl list; cronctl status NAME; cronctl logs NAME",
        ]

    def start(self) -> None:
        print("\n".join(self.lines()), flush=True)

    def stop(self, timeout: float) -> bool:
        return True


def _status_page_line(listen: str) -> str | None:
    from reconciler.service.http.server import parse_listen

    host, port = parse_listen(listen)
    if not port:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"status page: http://{host}:{port}/"


def run(args: argparse.Namespace) -> int:
    from reconciler.service.memory import limit_arenas

    limit_arenas()  # before any thread: a long-running daemon's memory follows what it keeps
    settings = settings_from_args(args)
    if args.interval_s is not None and args.interval_s <= 0:
        print("cronctl serve: --interval must be a positive number of seconds", file=sys.stderr)
        return 2
    if args.drift_check_s is not None and not args.drift_check_s > 0:
        print("cronctl serve: --drift-check-interval must be a positive number of seconds",
              file=sys.stderr)
        return 2
    if args.deep_check_s is not None and not args.deep_check_s > 0:
        print("cronctl serve: --deep-check-period must be a positive number of seconds",
              file=sys.stderr)
        return 2
    if args.history_days is not None and args.history_days < 1:
        print("cronctl serve: --history-days must be at least 1 (days execution records are "
              "kept)", file=sys.stderr)
        return 2
    from reconciler.service.wiring import build_daemon

    while True:
        try:
            built = build_daemon(settings, embedded=args.embedded)
        except CronctlError as exc:
            print(f"cronctl serve: {exc}", file=sys.stderr)
            return 1
        code = _serve(built, settings, args)
        if code != 0:
            # A component did not stop within the shutdown budget: exit now rather than wait
            # for its thread, so the process always ends within the budget.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        if not built.daemon.restart_requested:
            return code
        print("cronctl serve: the namespace's recorded settings changed; every component "
              "stopped, building them again with the new settings", file=sys.stderr,
              flush=True)


def _serve(built, settings, args: argparse.Namespace) -> int:
    """Print the start-up lines, run the daemon until a signal (or a restart request)."""
    from reconciler.service.control.uncommitted import UncommittedWatcher
    from reconciler.service.embedded.runner import LocalTaskRunner

    for line in built.summary:
        print(line, flush=True)
    components = built.daemon.components
    for component in components:
        if isinstance(component, LocalTaskRunner):
            print(component.describe(), flush=True)
    if os.path.isdir(os.path.join(settings.repo, ".git")):
        # Edits under the cron path are applied once committed: said at start and on change.
        components.append(UncommittedWatcher(built.settings))
    if args.embedded:
        components.append(WhereToLook(built))
    else:
        line = _status_page_line(built.settings.listen)
        if line:
            print(line, flush=True)
    return built.daemon.run_until_signalled()

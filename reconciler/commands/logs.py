"""`cronctl logs NAME [EXECUTION_ID] [--follow]`: a run's output from CloudWatch Logs.

The run's task wrote container ``main`` to ``<ns>/main/<task-id>`` in the namespace's log
group (``core.log_streams.stream_name``). Without EXECUTION_ID the newest execution that
started a task is shown; an id prefix works when it is unique. ``--follow`` polls for new
events until the execution is terminal and one more poll finds nothing new (or
``--max-wait`` seconds pass; Ctrl-C ends it with exit code 130).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from reconciler.commands.common import add_aws_flags, namespace_settings, settings_from_args
from reconciler.core import log_streams
from reconciler.errors import CronctlError, NotFound

HELP = "show the output of a cron's run (from CloudWatch Logs)"
EXIT_INTERRUPTED = 130
# How many recent executions an id prefix is matched against.
PREFIX_SEARCH_LIMIT = 1000


def register(subparsers) -> None:
    parser = subparsers.add_parser("logs", help=HELP, description=HELP)
    parser.add_argument("name", metavar="NAME", help="the cron's name")
    parser.add_argument("execution_id", metavar="EXECUTION_ID", nargs="?",
                        help="execution id or a unique prefix (default: the latest run)")
    parser.add_argument("--follow", "-f", action="store_true",
                        help="keep printing new output until the run has ended")
    parser.add_argument("--timestamps", action="store_true",
                        help="prefix each line with its UTC timestamp")
    parser.add_argument("--max-wait", type=float, default=None, metavar="SECONDS",
                        help="with --follow: stop after this many seconds (default: no limit)")
    parser.add_argument("--poll-interval", type=float, default=2.0, help=argparse.SUPPRESS)
    add_aws_flags(parser)
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"cronctl logs: {message}", file=sys.stderr)
    return 1


class _Reader:
    """Prints a stream's new events, remembering where it stopped."""

    def __init__(self, clients, group: str, stream: str, timestamps: bool) -> None:
        self.clients, self.group, self.stream = clients, group, stream
        self.timestamps = timestamps
        self.token: str | None = None
        self.found = False

    def print_new(self) -> int:
        """Print what was added since the last call; how many events (NotFound: no stream)."""
        from reconciler.adapters.logs import read_pages

        count = 0
        for events, token in read_pages(self.clients, self.group, self.stream, self.token):
            if events:
                sys.stdout.write("".join(
                    log_streams.format_event(e, self.timestamps) + "\n" for e in events))
                sys.stdout.flush()
                count += len(events)
            self.token = token
        self.found = True
        return count

    def try_print_new(self) -> int | None:
        """Like ``print_new``; None while the stream does not exist."""
        try:
            return self.print_new()
        except NotFound:
            return None


def _follow(reader: _Reader, is_terminal, interval: float, max_wait: float | None,
            pause: threading.Event) -> str:
    """Poll until the run is over and a poll brought nothing new; 'done' or 'max-wait'."""
    deadline = None if max_wait is None else time.monotonic() + max_wait
    while True:
        terminal = is_terminal()
        new = reader.try_print_new()
        if terminal and not new:
            return "done"
        if deadline is not None and time.monotonic() >= deadline:
            return "max-wait"
        wait = interval if deadline is None else min(interval, deadline - time.monotonic())
        pause.wait(max(0.0, wait))


def _choose(store, cron: str, wanted: str | None) -> log_streams.Choice:
    """An exact id is looked up directly; otherwise the cron's recent executions are searched."""
    if wanted and wanted.strip():
        exact = store.get(wanted.strip())
        if exact is not None and exact.cron == cron:
            return log_streams.Choice(exact)
    return log_streams.pick_execution(cron, store.recent(cron, PREFIX_SEARCH_LIMIT), wanted)


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.executions import ExecutionStore
    from reconciler.adapters.registry_read import RegistryReader

    if args.max_wait is not None and args.max_wait < 0:
        return _fail("--max-wait must not be negative")
    if args.poll_interval <= 0:
        return _fail("--poll-interval must be positive")
    settings = settings_from_args(args)
    clients = AwsClients(settings)
    settings = namespace_settings(clients, settings, "logs")
    store = ExecutionStore(clients, settings)
    try:
        if RegistryReader(clients, settings).get(args.name) is None:
            return _fail(f"no cron named {args.name!r} in namespace {settings.namespace!r}")
        choice = _choose(store, args.name, args.execution_id)
        if choice.error:
            return _fail(choice.error)
        execution = choice.execution
        if not execution.task_arn:
            return _fail(log_streams.no_task_reason(execution))
        stream = log_streams.stream_name(settings.namespace, execution.task_arn)
        reader = _Reader(clients, settings.log_group_name, stream, args.timestamps)
        if args.follow:
            def is_terminal() -> bool:
                current = store.get(execution.execution_id)
                return current is None or current.terminal

            try:
                outcome = _follow(reader, is_terminal, args.poll_interval, args.max_wait,
                                  threading.Event())
            except KeyboardInterrupt:
                return EXIT_INTERRUPTED
            if outcome == "max-wait":
                print(f"cronctl logs: stopped following after {args.max_wait:g}s",
                      file=sys.stderr)
        else:
            reader.try_print_new()
    except CronctlError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if not reader.found:
        print(f"no logs yet for {execution.execution_id} (stream {stream} in "
              f"{settings.log_group_name})")
    return 0

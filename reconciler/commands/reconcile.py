"""`cronctl reconcile`: make AWS match the cron files (or, with --dry-run, show the plan)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from reconciler.commands.common import (
    add_aws_flags,
    add_output_flag,
    add_source_flags,
    namespace_settings,
    settings_from_args,
)

HELP = "compute the plan from the cron files and AWS, and apply it"
DESCRIPTION = HELP + (". Applying takes the namespace's leader lease for the pass (as a daemon "
                      "replica does) and releases it after; while a running daemon holds it, "
                      "the command refuses: ask that daemon for a pass (SIGHUP or its webhook "
                      "POST /reconcile) instead. --dry-run needs no lease. Exit codes: 0 "
                      "success, 1 error; with --detailed-exitcode 0 no changes, 2 changes "
                      "(pending with --dry-run, applied otherwise), 1 error. At the commit "
                      "the last converged pass applied, the pass is cheap: it reads one "
                      "record and nothing else (drift is not looked for); at a new commit "
                      "it lists every resource and reads one by one a share of them in "
                      "rotation (enough to read each within --deep-check-period), and the "
                      "plan says how many it did not read and since when they were last "
                      "read; --full-check reads every resource one by one and repairs all "
                      "drift.")


def register(subparsers) -> None:
    parser = subparsers.add_parser("reconcile", help=HELP, description=DESCRIPTION)
    add_source_flags(parser)
    add_aws_flags(parser)
    add_output_flag(parser, ("text", "json", "markdown"))  # markdown: a pull-request comment
    parser.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    parser.add_argument("--full-check", action="store_true",
                        help="read every resource one by one, even at the applied commit "
                             "(finds and, unless --dry-run, repairs all drift)")
    parser.add_argument("--deep-check-period", dest="deep_check_s", type=float, default=None,
                        metavar="SECONDS",
                        help="without --full-check, read one by one enough of the resources "
                             "(in rotation) that each is read within this period (env "
                             "CRONCTL_DEEP_CHECK_S; default 86400); the others are only listed")
    parser.add_argument("--detailed-exitcode", action="store_true",
                        help="exit 2 when there are changes, 0 when none, 1 on error")
    parser.add_argument("--max-deletes", type=int, default=None,
                        help="most crons one pass may delete (default 10%% of the registry, "
                             "at least 3)")
    parser.add_argument("--allow-mass-delete", action="store_true", default=None,
                        help="delete even more crons than --max-deletes")
    parser.set_defaults(func=run)


def exit_code(result, detailed: bool) -> int:
    if not result.ok:
        return 1
    if detailed and result.plan.has_changes:
        return 2
    return 0


def clock_text(seconds: float | None) -> str:
    """``H:MM:SS`` of a time left (``-:--:--`` unknown), as rich shows times."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ApplyProgress:
    """On a terminal (stderr): a spinner while the plan is computed, then a bar while it is
    applied: N of M changes, the rate and the time left (``rich.progress``): the apply's own
    estimate (the paced calls left at the API rates, or its pace so far, whichever is longer),
    else rich's from the rate. Log lines written meanwhile are printed above it; it is gone
    once the pass ends."""

    def __init__(self, stream=None, **console_options) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
        )
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:.1f} changes/s" if speed else "", style="progress.data.speed")

        class EtaColumn(ProgressColumn):
            """The apply's ETA (``eta_s``), else rich's estimate from the rate so far."""

            def render(self, task) -> Text:
                eta = task.fields.get("eta_s")
                if eta is None:
                    eta = task.time_remaining
                if task.finished:
                    eta = 0
                return Text(f"ETA {clock_text(eta)}", style="progress.remaining")

        class Counted(ProgressColumn):
            """``column`` once the total is known (nothing beside the planning spinner)."""

            def __init__(self, column: ProgressColumn) -> None:
                super().__init__()
                self.column = column

            def render(self, task):
                return self.column.render(task) if task.total is not None else Text("")

        console = Console(file=stream, stderr=stream is None, **console_options)
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"),
            *(Counted(column) for column in (BarColumn(), MofNCompleteColumn(), RateColumn(),
                                             EtaColumn())),
            console=console, transient=True)
        self._planning = None
        self._applying = None

    @classmethod
    def for_terminal(cls) -> ApplyProgress | None:
        """One when stderr is a terminal; None otherwise (nothing extra is written)."""
        return cls() if sys.stderr.isatty() else None

    def __enter__(self) -> ApplyProgress:
        self.progress.start()
        self._planning = self.progress.add_task("Reading the cron files and AWS", total=None)
        return self

    def __exit__(self, *_exc) -> None:
        self.progress.stop()

    def report(self, done: int, total: int, eta_s: float | None = None) -> None:
        """``apply_plan``'s progress: ``done`` of ``total`` changes tried, and the seconds the
        rest should take (None: unknown)."""
        if self._applying is None:
            if self._planning is not None:
                self.progress.update(self._planning, visible=False)
            self._applying = self.progress.add_task("Applying changes", total=total,
                                                    eta_s=None)
        self.progress.update(self._applying, completed=done, total=total, eta_s=eta_s)


def check_dict(result) -> dict | None:
    """The JSON ``check``: full or cheap, why, and (a cheap pass) what is applied since when."""
    if result.check is None:
        return None
    data = {"kind": result.check.kind.value, "reason": result.check.reason}
    if result.cheap and result.recorded is not None:
        data["applied_commit"] = result.recorded.commit
        data["last_full_check"] = result.recorded.checked_at.isoformat()
        data["summary"] = result.summary
    return data


def _warn_uncommitted(settings) -> str | None:
    from reconciler.service.control.uncommitted import uncommitted, warning_text

    text = warning_text(settings, uncommitted(settings))
    if text:
        print(f"cronctl reconcile: warning: {text}", file=sys.stderr)
    return text


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.aws import AwsClients
    from reconciler.core.plan.render import plain_message, render_json, render_text
    from reconciler.service.control.apply import PROGRESS
    from reconciler.service.control.reconcile import run_pass
    from reconciler.service.control.reconcile_loop import run_leased_pass

    if args.max_deletes is not None and args.max_deletes < 0:
        print("cronctl reconcile: --max-deletes must be 0 or more", file=sys.stderr)
        return 1
    if args.deep_check_s is not None and not args.deep_check_s > 0:
        print("cronctl reconcile: --deep-check-period must be a positive number of seconds",
              file=sys.stderr)
        return 1
    settings = settings_from_args(args)
    warning = _warn_uncommitted(settings)
    clients = AwsClients(settings)
    settings = namespace_settings(clients, settings, "reconcile")
    progress = ApplyProgress.for_terminal()
    with progress or contextlib.nullcontext():
        token = PROGRESS.set(progress.report if progress else None)
        try:
            if args.dry_run:
                result = run_pass(clients, settings, dry_run=True, full_check=args.full_check)
            else:  # LeaseHeld / ConfigError: one line on stderr, exit 1 (cli.main)
                result = run_leased_pass(clients, settings, full_check=args.full_check)
        finally:
            PROGRESS.reset(token)
    if args.output == "json" or result.plan is None:
        for error in result.errors:
            print(f"cronctl reconcile: {plain_message(error)}", file=sys.stderr)
    if args.output == "json":
        sys.stdout.write(render_json(result.plan, result.api_calls, result.apply_errors,
                                     result.errors, result.commit,
                                     warnings=(warning,) if warning else (),
                                     skipped=result.skipped, check=check_dict(result)))
    elif args.output == "markdown":
        from datetime import UTC, datetime

        from reconciler.core.plan.markdown import render_markdown

        sys.stdout.write(render_markdown(result.plan, result.apply_errors, result.errors,
                                         now=datetime.now(UTC), dry_run=args.dry_run))
        if result.summary:  # a cheap pass: what is applied, and the last full check
            sys.stdout.write(f"\n{result.summary}\n")
    elif result.plan is not None:
        sys.stdout.write(render_text(result.plan, result.apply_errors, result.errors,
                                     result.skipped, summary=result.summary))
        if not args.dry_run and result.plan.has_changes:
            print(f"Applied {len(result.applied)} of {len(result.plan.pending)} changes"
                  f"{f'; {len(result.apply_errors)} failed' if result.apply_errors else ''}"
                  f"{f'; {len(result.skipped)} skipped' if result.skipped else ''}.")
    return exit_code(result, args.detailed_exitcode)

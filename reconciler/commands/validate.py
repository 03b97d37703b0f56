"""`cronctl validate`: check cron files before they are merged, and show when they will run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from reconciler.adapters.gitsource.reader import read_directory, read_git
from reconciler.commands.common import add_output_flag, add_source_flags, settings_from_args
from reconciler.core.alerts.decide import slack_warnings
from reconciler.core.cronfile import yaml_lines
from reconciler.core.cronfile.calendars import calendar_folder, excluded_by
from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.core.cronfile.durations import format_duration
from reconciler.core.cronfile.loader import LoadResult, load_snapshot
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.cronfile.yaml_lines import Position
from reconciler.core.executions import catchup
from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule import window as active_window
from reconciler.core.schedule.timeline import fleet_timeline, offset_hint
from reconciler.core.spec import MAX_BACKOFF_S, CronSpec
from reconciler.errors import SourceError

HELP = "check cron files (schema, schedules, names) and show their next runs"
DESCRIPTION = """\
Check cron files the way the control plane will read them: every field, every schedule
expression, unique names. All errors of all files are reported at once, each as
FILE:LINE:COLUMN: FIELD: MESSAGE. For every valid cron, its schedule in words and its next
3 runs (UTC, and in its time zone) are shown; runs on dates its calendars (exclude:) leave
out are not among them, and how many were left out is said. Calendar files
(<path>/calendars/NAME.yaml) are checked too; with PATH arguments they are read from the
--path folder's calendars/.

What is read:
  cronctl validate                    the --path folder (default crons.d) of the current directory
  cronctl validate PATH [PATH ...]    these files and folders (folders: every *.yaml / *.yml)
  cronctl validate --ref main         the --path folder at a commit of the Git repo (--repo, default .)
A commit is read whenever --repo or --ref (or CRONCTL_REPO / CRONCTL_REF) is given and no
PATH is.

Output (--output): text (for people), json ({"crons": [...], "errors": [...]}) or github
(one ::error annotation per error, for GitHub Actions).

A one-time schedule, at(...), whose time has passed is an error here (a new file would never
run); once it has run, the reconcile treats it as done (nothing re-created, no error), so
delete the file then, or leave it out of the PATHs validated. An 'active' window is shown;
next runs fall inside it.

Warnings (never failing): a minute of the next 24 hours that needs more task starts than
RunTask accepts at once (its burst of 100) is named at the schedule line of each cron firing
in it, with how late the last start would be and a suggested offset (`cronctl schedule`
shows the whole timeline).

Exit status: 0 when every file is valid, 1 when any is not or the source cannot be read.
"""
NEXT_RUNS = 3


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="cron files or folders to check (default: the --path folder)")
    add_output_flag(parser, ("text", "json", "github"))
    add_source_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.paths and (args.repo or args.ref):
        print("cronctl validate: PATH arguments and --repo/--ref exclude each other; "
              "use --path to choose the folder inside the repo", file=sys.stderr)
        return 2
    try:
        result, snapshot = load_source(args)
    except SourceError as error:
        print(f"cronctl validate: cannot read the cron files: {error}", file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    result = with_past_one_time_errors(result, snapshot, now)
    warnings = busy_minute_warnings(result, snapshot, now)
    # Validate reads no namespace: the Slack settings checked are this process's
    # (CRONCTL_SLACK_TOKEN / CRONCTL_SLACK_WEBHOOK_URL), as the daemon's would be.
    warnings += slack_warning_diagnostics(result, snapshot,
                                          settings_from_args(args).slack_configured)
    warnings.sort()
    if args.output == "json":
        print(json.dumps({**to_json(result, now),
                          "warnings": [w.to_dict() for w in warnings]}, indent=2))
    elif args.output == "github":
        for diagnostic in result.diagnostics:
            print(diagnostic.github())
        for warning in warnings:
            print(warning.github("warning"))
        print(summary(result), file=sys.stderr)
    else:
        print(to_text(result, now, warnings))
    return 0 if result.ok else 1


def _position(snapshot: Snapshot, file: str, path: tuple) -> Position:
    data = snapshot.files.get(file)
    if data is None:
        return Position(1, 1)
    return yaml_lines.parse(data.decode("utf-8", "replace")).position(path, key=True)


def slack_warning_diagnostics(result: LoadResult, snapshot: Snapshot,
                              slack_configured: bool) -> list[Diagnostic]:
    """A warning at the ``notifications.slack`` line of each cron naming a Slack channel
    when this process has no way to post to Slack (``core.alerts.decide.slack_warnings``)."""
    files = {spec.name: spec.file for spec in result.specs}
    out = []
    for warning in slack_warnings(result.specs, slack_configured):
        name = warning.split(":", 1)[0].removeprefix("cron ")
        file = files[name]
        where = _position(snapshot, file, ("notifications", "slack"))
        out.append(Diagnostic(file, where.line, where.column, "notifications.slack", warning))
    return out


def with_past_one_time_errors(result: LoadResult, snapshot: Snapshot,
                              now: datetime) -> LoadResult:
    """``result`` with an error at the ``schedule`` line of each one-time ``at()`` whose time
    is not after ``now`` (its cron moves from the valid specs to the held back)."""
    past: dict[str, Diagnostic] = {}
    for spec in result.specs:
        moment = schedule.one_time_at(spec.schedule, spec.timezone)
        if moment is None or moment > now:
            continue
        where = _position(snapshot, spec.file, ("schedule",))
        past[spec.name] = Diagnostic(
            spec.file, where.line, where.column, "schedule",
            f"{spec.schedule} ({spec.timezone}) is in the past ({iso_utc(moment)}, now "
            f"{iso_utc(now)}): a new cron would never run; set a future time (once it has run, "
            "delete the file: the reconcile treats a run one-time cron as done)")
    if not past:
        return result
    return replace(result, specs=tuple(s for s in result.specs if s.name not in past),
                   diagnostics=tuple(sorted({*result.diagnostics, *past.values()})),
                   held_back=result.held_back | frozenset(past),
                   files={k: v for k, v in result.files.items() if k not in past})


def busy_minute_warnings(result: LoadResult, snapshot: Snapshot, now: datetime,
                         window_s: int = 86400) -> list[Diagnostic]:
    """A warning at the ``schedule`` line of each cron that fires in a minute of the next day
    needing more task starts than RunTask's burst allows at once (``core.schedule.timeline``)."""
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    timeline = fleet_timeline(result.specs, start, start + timedelta(seconds=window_s))
    files = {spec.name: spec.file for spec in result.specs}
    warnings: list[Diagnostic] = []
    for minute in timeline.over_burst():
        hint = offset_hint(minute)
        for cron in minute.crons:
            file = files[cron]
            position = _position(snapshot, file, ("schedule",))
            warnings.append(Diagnostic(file, position.line, position.column, "schedule", hint))
    return sorted(set(warnings))


def load_source(args: argparse.Namespace) -> tuple[LoadResult, Snapshot]:
    """The cron files the flags name (PATHs, a commit, or the --path folder), loaded.
    Raises ``SourceError`` when they cannot be read."""
    settings = settings_from_args(args)
    paths = getattr(args, "paths", None) or []
    from_git = bool(args.repo or args.ref) or (
        not paths and bool(os.environ.get("CRONCTL_REPO") or os.environ.get("CRONCTL_REF")))
    if from_git:
        snapshot = read_git(settings.repo, settings.ref, settings.path)
        return load_snapshot(snapshot, settings.path), snapshot
    if paths:
        # The calendars that ``exclude:`` names are read from the --path folder's.
        calendars = calendar_folder(settings.path)
        snapshot = read_paths(paths)
        if os.path.isdir(calendars):
            extra = read_directory(".", [calendars])
            snapshot = Snapshot(commit=None, files={**extra.files, **snapshot.files},
                                refused=snapshot.refused + extra.refused)
        return load_snapshot(snapshot, cron_path="", calendar_dir=calendars), snapshot
    snapshot = read_directory(".", [settings.path])
    return load_snapshot(snapshot, settings.path), snapshot


def read_paths(paths: list[str]) -> Snapshot:
    """The files and folders named on the command line, as one snapshot.

    Paths inside the current directory keep keys relative to it (what CI annotations need);
    a path elsewhere is read from its own folder and shown as given.
    """
    here = os.path.realpath(".")
    inside = [p for p in paths if _within(os.path.realpath(p), here)]
    parts = [read_directory(".", inside)] if inside else []
    for given in (p for p in paths if p not in inside):
        root = given if os.path.isdir(given) else os.path.dirname(given) or "."
        part = read_directory(root, ["." if root == given else os.path.basename(given)])
        parts.append(Snapshot(
            commit=None,
            files={os.path.join(root, key): data for key, data in part.files.items()},
            refused=tuple(_moved(d, root) for d in part.refused)))
    files: dict[str, bytes] = {}
    refused = ()
    for part in parts:
        files.update(part.files)
        refused += part.refused
    return Snapshot(commit=None, files=files, refused=refused)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _moved(diagnostic: Diagnostic, root: str) -> Diagnostic:
    return replace(diagnostic, file=os.path.join(root, diagnostic.file))


def next_runs(spec: CronSpec, now: datetime) -> list[datetime]:
    """The next runs inside the cron's active window, leaving out excluded dates."""
    return next_runs_and_excluded(spec, now)[0]


def next_runs_and_excluded(spec: CronSpec, now: datetime
                           ) -> tuple[list[datetime], list[tuple[datetime, str, str]]]:
    """The next runs, leaving out fire times on dates the cron's calendars exclude, and the
    fire times left out before the last run shown: (time, calendar, date)."""
    if not spec.exclude:
        return active_window.spec_fire_times(spec, now, NEXT_RUNS), []
    runs: list[datetime] = []
    excluded: list[tuple[datetime, str, str]] = []
    after = now
    for _ in range(20):      # at most 20 x 100 fire times looked at
        batch = active_window.spec_fire_times(spec, after, 100)
        for moment in batch:
            hit = excluded_by(spec.exclude, moment)
            if hit:
                excluded.append((moment, *hit))
            else:
                runs.append(moment)
            if len(runs) == NEXT_RUNS:
                return runs, excluded
        if len(batch) < 100:
            break
        after = batch[-1]
    return runs, excluded


def run_lines(spec: CronSpec) -> list[str]:
    """``concurrency: queue``, ``retries`` and ``catch-up`` in words (issue 11), when set."""
    lines = []
    if spec.concurrency == "queue":
        lines.append("  overlap    queue: a run due while the last one runs starts when it "
                     "ends (one waits, more are skipped)")
    if spec.retries is not None:
        policy = spec.retries
        waits = [format_duration(min(MAX_BACKOFF_S, policy.backoff_s * 2 ** k))
                 for k in range(policy.attempts)]
        what = "failure, timeout" if policy.on_timeout else "failure"
        lines.append(f"  retries    up to {policy.attempts} on {what}, after "
                     f"{', '.join(waits)}; never past the next run"
                     + (" (concurrency: allow: may be)" if spec.concurrency == "allow" else ""))
    if spec.catch_up_s is not None:
        lines.append(f"  catch-up   {format_duration(catchup.window_s(spec))}: a run missed "
                     "during an outage starts late within it, older ones are MISSED")
    return lines


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(result: LoadResult, now: datetime) -> dict:
    """The ``--output json`` document."""
    return {
        "crons": [{"name": spec.name, "file": spec.file, "schedule": spec.schedule,
                   "timezone": spec.timezone,
                   "description": schedule.describe(spec.schedule, spec.timezone),
                   **({"active": spec.active.to_dict()} if spec.active else {}),
                   "next_runs": [iso_utc(moment) for moment in next_runs(spec, now)],
                   **({"excluded_runs": [
                       {"at": iso_utc(moment), "calendar": calendar, "date": day}
                       for moment, calendar, day in next_runs_and_excluded(spec, now)[1]]}
                      if spec.exclude else {})}
                  for spec in result.specs],
        "errors": [d.to_dict() for d in result.diagnostics],
    }


def to_text(result: LoadResult, now: datetime, warnings: list[Diagnostic] = ()) -> str:
    """The ``--output text`` report: valid crons, then errors, then a summary line."""
    lines: list[str] = []
    for spec in result.specs:
        lines += [f"{spec.name}  ({spec.file})",
                  f"  schedule   {spec.schedule}",
                  f"  runs       {schedule.describe(spec.schedule, spec.timezone)}"]
        if spec.suspend:
            lines.append("  suspended  yes: nothing will start until 'suspend' is removed")
        if spec.active:
            lines.append(f"  active     {active_window.describe_window(spec.active)} "
                         f"({spec.timezone})")
        lines += run_lines(spec)
        zone = ZoneInfo(spec.timezone)
        runs, excluded = next_runs_and_excluded(spec, now)
        if spec.exclude:
            lines.append("  exclude    " + excluded_text(spec, excluded))
        if spec.suspend_after_failures:
            lines.append(f"  pauses     after {spec.suspend_after_failures} consecutive failed "
                         f"runs (then: cronctl resume {spec.name})")
        if not runs:
            lines.append("  next runs  none: the schedule has no fire times after now"
                         + (" inside its active window" if spec.active else ""))
        for index, moment in enumerate(runs):
            local = "" if spec.timezone == "UTC" else \
                f"  ({moment.astimezone(zone).isoformat()} {spec.timezone})"
            label = "next runs" if index == 0 else ""
            lines.append(f"  {label:<9}  {iso_utc(moment)}{local}")
        lines.append("")
    if warnings:
        lines.append("warnings:")
        lines += [str(warning) for warning in warnings]
        lines.append("")
    if result.diagnostics:
        lines.append("errors:")
        lines += [str(diagnostic) for diagnostic in result.diagnostics]
        lines.append("")
    lines.append(summary(result))
    return "\n".join(lines)


def excluded_text(spec: CronSpec, excluded: list[tuple[datetime, str, str]]) -> str:
    """``dates of calendar holidays-de: 2 runs left out (2026-12-24, 2026-12-25)``."""
    names = ", ".join(e.calendar for e in spec.exclude)
    text = f"dates of calendar{'s' if len(spec.exclude) > 1 else ''} {names}"
    if not excluded:
        return text
    days = ", ".join(sorted({day for _, _, day in excluded}))
    return f"{text}: {len(excluded)} run{'s' if len(excluded) != 1 else ''} left out ({days})"


def summary(result: LoadResult) -> str:
    """``3 crons valid, 2 errors in 1 file``."""
    valid = len(result.specs)
    text = f"{valid} cron{'' if valid == 1 else 's'} valid"
    errors = len(result.diagnostics)
    if not errors:
        return f"{text}, no errors"
    files = len({d.file for d in result.diagnostics})
    return (f"{text}, {errors} error{'' if errors == 1 else 's'} in "
            f"{files} file{'' if files == 1 else 's'}")

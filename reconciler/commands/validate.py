"""`cronctl validate`: check cron files before they are merged, and show when they will run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from reconciler.adapters.gitsource.reader import read_directory, read_git
from reconciler.commands.common import add_output_flag, add_source_flags, settings_from_args
from reconciler.core.alerts.decide import slack_warnings
from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.core.cronfile.loader import LoadResult, load_snapshot
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.schedule import expressions as schedule
from reconciler.core.spec import CronSpec
from reconciler.errors import SourceError

HELP = "check cron files (schema, schedules, names) and show their next runs"
DESCRIPTION = """\
Check cron files the way the control plane will read them: every field, every schedule
expression, unique names. All errors of all files are reported at once, each as
FILE:LINE:COLUMN: FIELD: MESSAGE. For every valid cron, its schedule in words and its next
3 runs (UTC, and in its time zone) are shown.

What is read:
  cronctl validate                    the --path folder (default crons.d) of the current directory
  cronctl validate PATH [PATH ...]    these files and folders (folders: every *.yaml / *.yml)
  cronctl validate --ref main         the --path folder at a commit of the Git repo (--repo, default .)
A commit is read whenever --repo or --ref (or CRONCTL_REPO / CRONCTL_REF) is given and no
PATH is.

Output (--output): text (for people), json ({"crons": [...], "errors": [...]}) or github
(one ::error annotation per error, for GitHub Actions).

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
    settings = settings_from_args(args)
    from_git = bool(args.repo or args.ref) or (
        not args.paths and bool(os.environ.get("CRONCTL_REPO") or os.environ.get("CRONCTL_REF")))
    try:
        if from_git:
            snapshot = read_git(settings.repo, settings.ref, settings.path)
            result = load_snapshot(snapshot, settings.path)
        elif args.paths:
            result = load_snapshot(read_paths(args.paths), cron_path="")
        else:
            result = load_snapshot(read_directory(".", [settings.path]), settings.path)
    except SourceError as error:
        print(f"cronctl validate: cannot read the cron files: {error}", file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    # Validate reads no namespace: the Slack settings checked are this process's
    # (CRONCTL_SLACK_TOKEN / CRONCTL_SLACK_WEBHOOK_URL), as the daemon's would be.
    warnings = slack_warnings(result.specs, settings.slack_configured)
    if args.output == "json":
        document = to_json(result, now)
        if warnings:
            document["warnings"] = warnings
        print(json.dumps(document, indent=2))
    elif args.output == "github":
        for diagnostic in result.diagnostics:
            print(diagnostic.github())
        files = {spec.name: spec.file for spec in result.specs}
        for warning in warnings:
            name = warning.split(":", 1)[0].removeprefix("cron ")
            print(f"::warning file={files.get(name, '')}::{warning}")
        print(summary(result), file=sys.stderr)
    else:
        text = to_text(result, now)
        if warnings:
            text = text.replace(summary(result), "warnings:\n" + "\n".join(
                f"  {w}" for w in warnings) + "\n\n" + summary(result))
        print(text)
    return 0 if result.ok else 1


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
    return schedule.next_fire_times(spec.schedule, spec.timezone, now, NEXT_RUNS)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(result: LoadResult, now: datetime) -> dict:
    """The ``--output json`` document."""
    return {
        "crons": [{"name": spec.name, "file": spec.file, "schedule": spec.schedule,
                   "timezone": spec.timezone,
                   "description": schedule.describe(spec.schedule, spec.timezone),
                   "next_runs": [iso_utc(moment) for moment in next_runs(spec, now)]}
                  for spec in result.specs],
        "errors": [d.to_dict() for d in result.diagnostics],
    }


def to_text(result: LoadResult, now: datetime) -> str:
    """The ``--output text`` report: valid crons, then errors, then a summary line."""
    lines: list[str] = []
    for spec in result.specs:
        lines += [f"{spec.name}  ({spec.file})",
                  f"  schedule   {spec.schedule}",
                  f"  runs       {schedule.describe(spec.schedule, spec.timezone)}"]
        if spec.suspend:
            lines.append("  suspended  yes: nothing will start until 'suspend' is removed")
        zone = ZoneInfo(spec.timezone)
        runs = next_runs(spec, now)
        if not runs:
            lines.append("  next runs  none: the schedule has no fire times after now")
        for index, moment in enumerate(runs):
            local = "" if spec.timezone == "UTC" else \
                f"  ({moment.astimezone(zone).isoformat()} {spec.timezone})"
            label = "next runs" if index == 0 else ""
            lines.append(f"  {label:<9}  {iso_utc(moment)}{local}")
        lines.append("")
    if result.diagnostics:
        lines.append("errors:")
        lines += [str(diagnostic) for diagnostic in result.diagnostics]
        lines.append("")
    lines.append(summary(result))
    return "\n".join(lines)


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

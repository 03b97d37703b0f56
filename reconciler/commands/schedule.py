"""`cronctl schedule`: the fleet's timeline — every run of every cron in a window, and the
minutes that need the most task starts."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from reconciler.commands.common import add_output_flag, add_source_flags
from reconciler.commands.validate import load_source
from reconciler.core.cronfile.durations import parse_duration
from reconciler.core.schedule.timeline import (
    RUNTASK_BURST,
    RUNTASK_RATE,
    Timeline,
    fleet_timeline,
    offset_hint,
)
from reconciler.errors import SourceError

HELP = "list every run of every cron in a window, and the busiest minutes"
DESCRIPTION = f"""\
The fleet's timeline, from the cron files (the same sources as `cronctl validate`): every
scheduled run of every cron in the next --next (default 24h), minute by minute, then the
busiest minutes with the number of task starts (RunTask calls) each needs.

RunTask accepts a burst of {RUNTASK_BURST} calls, then {RUNTASK_RATE:g} a second (Fargate's
defaults): a minute over the burst starts its last task late, and the busiest minutes say by
how much and which crons to move. A rate() cron fires every interval from when its schedule
was created, which the files do not say: it is counted from the window's start (the worst
case, all of them together) and named. Suspended crons start nothing and are left out.

Exit status: 0; 1 when the cron files cannot be read or are invalid (their errors are shown
by `cronctl validate`); 2 for a bad --next.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("schedule", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="cron files or folders (default: the --path folder)")
    parser.add_argument("--next", default="24h", metavar="DURATION",
                        help="how far ahead: seconds or 90s/15m/2h/7d (default 24h, at most 31d)")
    parser.add_argument("--busiest", type=int, default=5, metavar="N",
                        help="how many of the busiest minutes to show (default 5)")
    add_output_flag(parser, ("text", "json"))
    add_source_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, now: datetime | None = None) -> int:
    try:
        window = parse_duration(args.next)
    except ValueError as error:
        print(f"cronctl schedule: --next {error}", file=sys.stderr)
        return 2
    if window > 31 * 86400:
        print(f"cronctl schedule: --next must be at most 31d, got {args.next}", file=sys.stderr)
        return 2
    if args.busiest < 0:
        print("cronctl schedule: --busiest must be 0 or more", file=sys.stderr)
        return 2
    try:
        result, _ = load_source(args)
    except SourceError as error:
        print(f"cronctl schedule: cannot read the cron files: {error}", file=sys.stderr)
        return 1
    start = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    timeline = fleet_timeline(result.specs, start, start + timedelta(seconds=window))
    if args.output == "json":
        print(json.dumps(to_json(timeline, args.busiest), indent=2))
    else:
        sys.stdout.write(to_text(timeline, args.busiest))
    if result.diagnostics:
        files = len({d.file for d in result.diagnostics})
        print(f"cronctl schedule: {files} invalid file{'' if files == 1 else 's'} left out; "
              "`cronctl validate` shows why", file=sys.stderr)
        return 1
    return 0


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(timeline: Timeline, busiest: int) -> dict:
    return {
        "start": _utc(timeline.start), "end": _utc(timeline.end),
        "crons": timeline.crons, "runs": len(timeline.fires),
        "fires": [{"at": _utc(f.at), "cron": f.cron, "file": f.file} for f in timeline.fires],
        "busiest_minutes": [
            {"minute": _utc(m.minute), "task_starts": m.starts, "crons": list(m.crons),
             "late_s": round(m.late_s(), 1), "over_burst": m.over_burst(),
             "over_minute": m.over_minute()}
            for m in timeline.busiest(busiest)],
        "runtask": {"burst": RUNTASK_BURST, "per_second": RUNTASK_RATE},
        "suspended": list(timeline.suspended),
        "rate_counted_from_window_start": list(timeline.assumed_anchor),
        "not_evaluated": [{"cron": c, "reason": r} for c, r in timeline.unevaluable],
    }


def _names(crons: tuple[str, ...], shown: int = 6) -> str:
    text = ", ".join(crons[:shown])
    return text + (f" (+{len(crons) - shown})" if len(crons) > shown else "")


def to_text(timeline: Timeline, busiest: int) -> str:
    lines = [f"Timeline {timeline.start:%Y-%m-%d %H:%M} -> {timeline.end:%Y-%m-%d %H:%M} UTC: "
             f"{timeline.crons} cron{'' if timeline.crons == 1 else 's'}, "
             f"{len(timeline.fires)} run{'' if len(timeline.fires) == 1 else 's'}"]
    by_minute: dict[datetime, list[str]] = defaultdict(list)
    for fire in timeline.fires:
        by_minute[fire.at.replace(second=0)].append(fire.cron)
    for minute in sorted(by_minute):
        crons = tuple(by_minute[minute])
        lines.append(f"  {minute:%Y-%m-%d %H:%M}  {len(crons):>5}  {_names(crons)}")
    if busiest and timeline.minutes:
        lines += ["", f"Busiest minutes (task starts; RunTask: burst {RUNTASK_BURST}, then "
                      f"{RUNTASK_RATE:g}/s):"]
        for minute in timeline.busiest(busiest):
            note = ""
            if minute.over_minute():
                note = "  more than RunTask allows in a minute"
            elif minute.over_burst():
                note = f"  over the burst: the last starts ~{minute.late_s():.0f} s late"
            lines.append(f"  {minute.minute:%Y-%m-%d %H:%M}  {minute.starts:>5}  "
                         f"{_names(minute.crons)}{note}")
        for minute in timeline.over_burst()[:busiest]:
            lines.append(f"  hint: {offset_hint(minute)}")
    if timeline.assumed_anchor:
        lines += ["", "rate() counted from the window's start (their creation time is not in "
                      f"the files): {_names(timeline.assumed_anchor)}"]
    if timeline.suspended:
        lines.append(f"suspended, left out: {_names(timeline.suspended)}")
    for cron, reason in timeline.unevaluable:
        lines.append(f"not evaluated: {cron}: {reason}")
    return "\n".join(lines) + "\n"

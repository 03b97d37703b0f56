"""``python -m bench``: run the benchmarks against an in-process moto server on loopback and
print Markdown (tables per benchmark, the command line, date and machine facts).

Every run is bounded: fixed sizes, per-wait deadlines, and nothing but loopback is contacted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import UTC, datetime

from bench import consumer_bench, dispatch_bench, reconcile_bench
from bench.env import machine_facts, moto_server
from reconciler.logs import configure

BENCHMARKS = ("reconcile", "dispatch", "consumer")
QUICK = {"sizes": (10,), "scheduler_sizes": (10,), "dispatches": 20, "executions": 10}


def sizes(text: str) -> tuple[int, ...]:
    """``10,100,1000`` -> (10, 100, 1000); each a positive integer of at most 10,000."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") \
            from exc
    if not values or any(not 0 < v <= 10_000 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be between 1 and 10000: {text!r}")
    return values


def count(text: str) -> int:
    value = sizes(text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError(f"one integer expected: {text!r}")
    return value[0]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=sizes, default=(10, 100, 1000),
                   help="cron counts for the rules backend (default 10,100,1000)")
    p.add_argument("--scheduler-sizes", type=sizes, default=(10, 100),
                   help="cron counts for the scheduler backend (default 10,100)")
    p.add_argument("--dispatches", type=count, default=200,
                   help="measured dispatches (default 200)")
    p.add_argument("--executions", type=count, default=100,
                   help="executions for the consumer benchmark, 10 events each (default 100)")
    p.add_argument("--only", choices=BENCHMARKS, action="append",
                   help="run only this benchmark (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="smallest sizes: 10 crons, 20 dispatches, 10 executions")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    configure(level="WARNING")
    chosen = args.only or list(BENCHMARKS)
    command = "python -m bench" + "".join(" " + shlex.quote(a) for a in (
        sys.argv[1:] if argv is None else argv))
    out = print
    out("## Run\n")
    out(f"- command: `{command}`")
    out(f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    for line in machine_facts():
        out(line)
    started = time.monotonic()
    with moto_server() as url:
        out("- AWS: in-process moto server on loopback (ThreadedMotoServer), state reset "
            "before each benchmark\n")
        if "reconcile" in chosen:
            runs = [reconcile_bench.run_one(url, "rules", n) for n in args.sizes]
            runs += [reconcile_bench.run_one(url, "scheduler", n) for n in args.scheduler_sizes]
            out("## 1. Reconcile: AWS API calls per pass\n")
            out(reconcile_bench.render(runs) + "\n")
        if "dispatch" in chosen:
            out("## 2. Dispatch latency: SNS Publish -> POST /sns -> RunTask -> task ARN "
                "recorded\n")
            out(dispatch_bench.render(dispatch_bench.run(url, args.dispatches)) + "\n")
        if "consumer" in chosen:
            out("## 3. Consumer throughput: ECS task state changes via SQS\n")
            out(consumer_bench.render(consumer_bench.run(url, args.executions)) + "\n")
    out(f"_Total benchmark time: {time.monotonic() - started:.0f} s._")
    return 0


if __name__ == "__main__":
    sys.exit(main())

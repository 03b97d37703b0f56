"""``python -m bench``: run the benchmarks against a moto server in its own process on loopback
and write ``results.json`` and ``RESULTS.md`` (to ``bench/`` unless ``--out``).

Every run is bounded: fixed sizes, per-wait deadlines, the moto server and daemons started by
the harness are stopped at the end, and nothing but loopback is contacted.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import consumer_bench, daemon_bench, dispatch_bench, quota_sim, reconcile_bench
from bench.env import load_average, machine_facts, moto_server
from bench.report import render
from reconciler.logs import configure

BENCHMARKS = ("reconcile", "dispatch", "consume", "daemon")
FULL = {"sizes": (1_000, 10_000), "dispatches": 1_000, "burst": 500, "events": 10_000,
        "rss_n": 10_000}
QUICK = {"sizes": (100, 1_000), "dispatches": 200, "burst": 200, "events": 400,
         "rss_n": 1_000}
HERE = Path(__file__).resolve().parent


def sizes(text: str) -> tuple[int, ...]:
    """``100,1000`` -> (100, 1000); each a positive integer of at most 10,000."""
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
    p.add_argument("--quick", action="store_true",
                   help="quick sizes: reconcile 100,1000; 200 dispatches; burst 200; 400 "
                        "events; daemon with 1,000 crons (default: 1000,10000; 1,000; 500; "
                        "10,000; 10,000)")
    p.add_argument("--sizes", type=sizes, help="cron counts of the reconcile rows")
    p.add_argument("--dispatches", type=count, help="deliveries of the dispatch row")
    p.add_argument("--burst", type=count, help="deliveries of the dispatch.burst row")
    p.add_argument("--events", type=count, help="events of the consume row")
    p.add_argument("--rss-n", dest="rss_n", type=count, help="crons of the daemon.rss row")
    p.add_argument("--only", choices=BENCHMARKS, action="append",
                   help="run only this benchmark (repeatable)")
    p.add_argument("--out", type=Path, default=HERE,
                   help="folder for results.json and RESULTS.md (default: bench/)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    configure(level="WARNING")
    chosen = args.only or list(BENCHMARKS)
    command = "python -m bench" + "".join(" " + shlex.quote(a) for a in (
        sys.argv[1:] if argv is None else argv))
    started = time.monotonic()
    rows = []
    run = {"command": command, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "quick": args.quick, **machine_facts()}
    with moto_server() as server:
        run["aws"] = (f"moto server in its own process ({' '.join(server.command)}), "
                      "loopback; state reset before each benchmark; calls counted "
                      "client-side (botocore before-call hooks)")
        daemon_rows = None
        if "reconcile" in chosen:
            last = None
            for n in sorted(args.sizes):
                _progress(f"reconcile N={n}")
                last = reconcile_bench.run(server.url, n)
                rows += last.rows
                _progress(f"  done ({time.monotonic() - started:.0f} s)")
            n = max(args.sizes)
            rows.append(quota_sim.run(last.initial_sequence, n, reconcile_bench.images(n)))
            if "daemon" in chosen and args.rss_n == n:  # on the namespace just reconciled
                _progress(f"daemon.rss N={n}")
                daemon_rows = daemon_bench.run(server.url, n, applied=True)
        if "dispatch" in chosen:
            _progress(f"dispatch {args.dispatches}, burst {args.burst}")
            rows += dispatch_bench.run(server.url, args.dispatches, args.burst)
        if "consume" in chosen:
            _progress(f"consume {args.events}")
            rows += consumer_bench.run(server.url, args.events)
        if "daemon" in chosen:
            if daemon_rows is None:
                _progress(f"daemon.rss N={args.rss_n}")
                daemon_rows = daemon_bench.run(server.url, args.rss_n)
            rows += daemon_rows
    run["total_s"] = round(time.monotonic() - started, 1)
    run["loadavg_end"] = load_average()
    results = {"run": run, "rows": [r.to_dict() for r in rows]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(render(results))
    _progress(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'} "
              f"({run['total_s']:.0f} s)")
    return 0


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

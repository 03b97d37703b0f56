"""The cron file's run fields of issue 11: ``concurrency: queue``, ``retries`` and ``catch-up``,
read into the spec (and back from the registry's form), and each bad value an error at its
file, line and field."""

from __future__ import annotations

import pytest

from reconciler.core.cronfile.loader import load_file
from reconciler.core.schedule.gaps import shortest_gap_s
from reconciler.core.spec import CronSpec, RetryPolicy


def cron(schedule: str, extra: str) -> bytes:
    return f"schedule: \"{schedule}\"\ncontainer:\n  image: busybox\n{extra}".encode()


def test_the_fields_are_read_with_their_defaults():
    spec, diagnostics = load_file("crons.d/r.yaml", cron(
        "cron(0 * * * ? *)",
        "concurrency: queue\nretries:\n  attempts: 3\n  backoff: 2m\n"
        "  on: [failure, timeout]\ncatch-up: 10m\n"))
    assert diagnostics == []
    assert spec.concurrency == "queue"
    assert spec.retries == RetryPolicy(attempts=3, backoff_s=120, on_timeout=True)
    assert spec.catch_up_s == 600
    assert CronSpec.from_dict(spec.to_dict(), spec.file) == spec
    plain, _ = load_file("crons.d/p.yaml", cron("cron(0 * * * ? *)", "retries: {attempts: 1}\n"))
    assert plain.retries == RetryPolicy(attempts=1, backoff_s=60, on_timeout=False)
    assert plain.catch_up_s is None
    # Unset, they leave the registry's spec (and its hash) as it was.
    bare, _ = load_file("crons.d/b.yaml", cron("cron(0 * * * ? *)", ""))
    assert "retries" not in bare.to_dict() and "catch_up_s" not in bare.to_dict()


@pytest.mark.parametrize(("schedule", "extra", "where", "message"), [
    ("rate(5 minutes)", "retries:\n  attempts: 0\n", "5:13 retries.attempts",
     "0 is less than the minimum of 1"),
    ("rate(5 minutes)", "retries:\n  attempts: 11\n", "5:13 retries.attempts",
     "11 is greater than the maximum of 10"),
    ("rate(5 minutes)", "retries:\n  attempts: 2\n  backoff: 5s\n", "6:12 retries.backoff",
     "must be at least 10s, got '5s'"),
    ("rate(5 minutes)", "retries:\n  attempts: 2\n  backoff: 6m\n", "6:12 retries.backoff",
     "6m is longer than the shortest gap between two fire times of the schedule (5m): "
     "a retry would reach the next scheduled run; at most 5m"),
    ("cron(0 9,17 ? * MON-FRI *)", "retries:\n  attempts: 2\n  backoff: 9h\n",
     "6:12 retries.backoff", "(8h)"),
    ("rate(5 minutes)", "retries:\n  attempts: 2\n  on: [timeout]\n", "6:7 retries.on",
     "must include 'failure'"),
    ("rate(5 minutes)", "retries:\n  attempts: 2\n  on: [crash]\n", "6:8 retries.on[0]",
     "crash"),
    ("rate(5 minutes)", "retries:\n  backoff: 1m\n", "4:1 retries",
     "attempts"),
    ("rate(5 minutes)", "catch-up: 10m\n", "4:11 catch-up",
     "10m is longer than the shortest gap between two fire times of the schedule (5m): "
     "a late run would reach the next scheduled run; at most 5m"),
    ("rate(5 minutes)", "catch-up: soon\n", "4:11 catch-up", "soon"),
    ("rate(5 minutes)", "concurrency: later\n", "4:14 concurrency", "later"),
])
def test_bad_values_are_errors_at_their_line(schedule, extra, where, message):
    spec, diagnostics = load_file("crons.d/r.yaml", cron(schedule, extra))
    assert spec is None
    [error] = diagnostics
    assert f"{error.line}:{error.column} {error.field}" == where, str(error)
    assert message in error.message, str(error)


@pytest.mark.parametrize(("expression", "zone", "gap"), [
    ("rate(5 minutes)", "UTC", 300),
    ("rate(1 day)", "UTC", 86400),
    ("cron(*/10 * * * ? *)", "UTC", 600),
    ("cron(0 9,17 ? * MON-FRI *)", "UTC", 8 * 3600),
    ("cron(0 12 * * ? *)", "Europe/Berlin", 23 * 3600),      # the spring-forward day
    ("cron(0 0 1 1 ? 2027)", "UTC", None),                  # fires once
])
def test_shortest_gap(expression, zone, gap):
    assert shortest_gap_s(expression, zone) == gap


def test_validate_shows_the_fields_in_words():
    from reconciler.commands.validate import run_lines

    spec, _ = load_file("crons.d/r.yaml", cron(
        "cron(0 * * * ? *)",
        "concurrency: queue\nretries: {attempts: 3, backoff: 20m}\ncatch-up: 10m\n"))
    assert run_lines(spec) == [
        "  overlap    queue: a run due while the last one runs starts when it ends (one "
        "waits, more are skipped)",
        "  retries    up to 3 on failure, after 20m, 40m, 1h; never past the next run",
        "  catch-up   10m: a run missed during an outage starts late within it, older ones "
        "are MISSED"]

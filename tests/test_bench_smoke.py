"""The benchmark harness at its smallest sizes: it runs, stops by itself, and its counts are
sane (a no-op pass writes nothing, crons share task definitions, one RunTask per dispatch,
every event consumed)."""

from __future__ import annotations

import argparse

import pytest

from bench import consumer_bench, dispatch_bench, reconcile_bench
from bench.__main__ import main, sizes
from bench.env import format_counts, is_write, percentile, writes


@pytest.mark.parametrize("backend", ["rules", "scheduler"])
def test_reconcile_counts_of_three_crons(aws, backend):
    run = reconcile_bench.run_one(aws, backend, 3)
    first, noop, edited, dry = run.steps
    assert first.result.api_calls["ecs.RegisterTaskDefinition"] == 3  # 3 images among 3 crons
    assert run.task_definitions_live == 3
    assert noop.result.plan is not None and not noop.result.plan.has_changes
    # the same commit again: a cheap pass, one read of the namespace's applied-commit record
    assert noop.result.cheap and noop.result.api_calls == {"dynamodb.BatchGetItem": 1}
    assert writes(dry.result.api_calls) == 0 and dry.result.plan.has_changes
    # rules: PutRule, TagResource, PutTargets, PutItem; and the applied-commit record cleared
    # before the change (DeleteItem) and written after it (PutItem)
    assert 0 < writes(edited.result.api_calls) <= 6
    per_cron_read = "eventbridge.ListTargetsByRule" if backend == "rules" else "scheduler.GetSchedule"
    assert dry.result.api_calls[per_cron_read] == 3
    table = reconcile_bench.render([run])
    assert table.count(f"| {backend} | 3 |") == 4


def test_dispatch_through_http_starts_one_task_per_publish(aws):
    run = dispatch_bench.run(aws, 3)
    assert len(run.latencies_s) == 3 and all(x > 0 for x in run.latencies_s)
    assert run.calls["ecs.RunTask"] == 3
    assert run.warm_up_calls["ecs.RunTask"] == 1
    assert "| 3 |" in dispatch_bench.render(run)


def test_consumer_consumes_every_event(aws):
    run = consumer_bench.run(aws, 2, copies=2)
    assert run.events == 8
    assert run.calls["dynamodb.GetItem"] == 8  # one read of the execution per event
    assert "| 2 | 8 |" in consumer_bench.render(run)


def test_main_prints_markdown_and_stops(capsys):
    assert main(["--only", "dispatch", "--dispatches", "1"]) == 0
    out = capsys.readouterr().out
    assert "- command: `python -m bench --only dispatch --dispatches 1`" in out
    assert "## 2. Dispatch latency" in out and "nproc:" in out


@pytest.mark.parametrize(("text", "expected"), [("10,100,1000", (10, 100, 1000)), ("5", (5,))])
def test_sizes_flag(text, expected):
    assert sizes(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "0", "10,-1", "20000"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        sizes(text)


def test_helpers():
    assert is_write("eventbridge.PutRule") and not is_write("eventbridge.ListTargetsByRule")
    assert format_counts({"a.X": 4, "a.Y": 6}, per=2) == "Y×3, X×2"
    assert format_counts({}) == "—"
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0

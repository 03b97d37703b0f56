"""The benchmark harness at tiny sizes: it starts its own moto server process, runs, stops by
itself, and writes well-formed ``results.json`` rows, each with its floor, and a RESULTS.md
with the issue's targets. Nothing here depends on timing: only shapes and call counts."""

from __future__ import annotations

import argparse
import json

import pytest
import structlog

from bench import quota_sim
from bench.__main__ import main, sizes
from bench.daemon_bench import _SERIES
from bench.dispatch_bench import throttled
from bench.env import format_counts, is_write, percentile, writes
from bench.reconcile_bench import images

KEYS = {"name": str, "n": int, "wall_s": float, "aws_calls": int, "calls_by_operation": dict,
        "floor_calls": int, "floor_wall_s": float, "floor_definition": str}


def bench_main(argv: list[str]) -> int:
    """``python -m bench`` in this process; the logging it configures for itself (WARNING and
    up) is undone after, so the tests that follow in this process log as they would alone."""
    saved = structlog.get_config()
    try:
        return main(argv)
    finally:
        structlog.configure(**saved)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert bench_main(["--sizes", "3", "--dispatches", "12", "--burst", "3", "--events", "20",
                       "--only", "reconcile", "--only", "dispatch", "--only", "consume",
                       "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    data["markdown"] = (out / "RESULTS.md").read_text()
    return data


def rows_named(results, name):
    return [r for r in results["rows"] if r["name"] == name]


def test_every_row_is_well_formed_with_its_floor(results):
    names = [r["name"] for r in results["rows"]]
    assert names == ["reconcile.initial", "reconcile.noop_same_commit", "reconcile.one_change",
                     "reconcile.drift_sweep", "apply.simulated_quota", "dispatch",
                     "dispatch.burst", "consume"]
    for r in results["rows"]:
        for key, kind in KEYS.items():
            assert isinstance(r[key], kind if kind is not float else (int, float)), (r, key)
        assert r["aws_calls"] == sum(r["calls_by_operation"].values()) > 0
        assert r["floor_calls"] > 0 and r["floor_wall_s"] >= 0
        # The consumer deletes a redelivery of what it stored and settled itself without a
        # call; the floor makes a refused write for each.
        assert r["floor_calls"] <= r["aws_calls"] or \
            r["name"] in ("reconcile.drift_sweep", "consume")
    assert results["run"]["command"].startswith("python -m bench --sizes 3")
    assert "moto server in its own process" in results["run"]["aws"]


def test_reconcile_rows_count_what_the_floors_say(results):
    initial, = rows_named(results, "reconcile.initial")
    k = images(3)
    assert initial["calls_by_operation"]["ecs.RegisterTaskDefinition"] == k
    assert initial["floor_calls"] == k + 3 * 3  # K + N x (PutRule + PutTargets + PutItem)
    noop, = rows_named(results, "reconcile.noop_same_commit")
    assert writes(noop["calls_by_operation"]) == 0 and noop["floor_calls"] == 1
    change, = rows_named(results, "reconcile.one_change")
    assert change["floor_calls"] == 3 and change["plan"]["update"] >= 1
    # the warm daemon: nothing read (the record cleared and written, the cron's writes)
    assert change["check"] == "incremental" and change["aws_calls"] <= 6
    sweep, = rows_named(results, "reconcile.drift_sweep")
    assert sweep["check"] == "sweep" and sweep["drifted"] == 3
    # the lists show the disabled and the deleted rule: repaired at once; the lost target
    # when the rotation reads its rule (1 of 3 rules per sweep)
    assert sweep["drift_repaired"] >= 2
    assert sweep["budget"] == {"eventbridge.ListTargetsByRule": 1,
                               "ecs.DescribeTaskDefinition": 1}
    reads = sweep["calls_by_operation"]
    assert reads["eventbridge.ListTargetsByRule"] <= 1 + (sweep["drift_repaired"] - 2)
    # 1 ListRules page + ListTaskDefinitionFamilies + the budget (1 + 1) + the repairs:
    # PutRule (disabled), PutRule + PutTargets (deleted), PutTargets (lost target, if read)
    assert sweep["floor_calls"] == 1 + 1 + 2 + 3 + (sweep["drift_repaired"] - 2)


def test_simulated_apply_is_labelled_and_bounded_by_its_floor(results):
    sim, = rows_named(results, "apply.simulated_quota")
    assert sim["simulated"] is True and sim["n"] == 10_000 and sim["images"] == 50
    assert sim["extrapolated_from"] == 3
    assert sim["floor_calls"] == 50 + 3 * 10_000
    assert sim["wall_s"] >= sim["quota_only_s"] >= sim["floor_wall_s"] > 0


def test_dispatch_rows(results):
    dispatch, = rows_named(results, "dispatch")
    assert dispatch["duplicates"] == 1  # every 10th of 12 deliveries
    assert dispatch["calls_by_operation"]["ecs.RunTask"] == 11
    assert dispatch["floor_calls"] == 3 * 11 + 1
    assert dispatch["cold_calls_by_operation"]["ecs.RunTask"] == 1
    for key in ("p50_ms", "p99_ms", "floor_p50_ms", "floor_p99_ms", "cold_ms", "floor_cold_ms"):
        assert dispatch[key] > 0
    # The floor's calls: 3 per new delivery (the record with its lock, RunTask, the task
    # ARN), 1 per duplicate (the refused write); the registry item comes from the cache.
    assert sum(dispatch["calls_per_new_delivery"].values()) == 3
    assert dispatch["calls_per_duplicate"] == {"dynamodb.TransactWriteItems": 1}
    assert dispatch["aws_calls"] == dispatch["floor_calls"]
    burst, = rows_named(results, "dispatch.burst")
    assert burst["all_started"] and burst["calls_by_operation"]["ecs.RunTask"] == 3
    assert burst["floor_calls"] == 9 and burst["aws_calls"] == 9


def test_consume_row(results):
    consume, = rows_named(results, "consume")
    assert consume["n"] == 20 and consume["executions"] == 2
    assert consume["max_queue_depth"] <= 30
    # per event 1 UpdateItem, per batch 2 SQS calls, per execution 1 lock DeleteItem
    assert consume["floor_calls"] >= 20 + 2 * 2 + 2  # 2 batches at least
    # The floor's calls, and one more per run: the write that empties its outbox (the
    # outbox's own, which the floor has not) and notes its lock released.
    assert consume["aws_calls"] <= consume["floor_calls"] + consume["executions"]
    assert "dynamodb.GetItem" not in consume["calls_by_operation"]


def test_markdown_has_targets_and_run_facts(results):
    md = results["markdown"]
    assert "## Issue 10's targets" in md and "| what | target | measured | verdict |" in md
    assert "nproc" in md and "moto" in md and "SIMULATED" in md
    for name in ("reconcile.initial", "dispatch.burst", "consume"):
        assert f"`{name}`" in md


def test_quota_simulation_without_latency():
    sequence = [("ecs.RegisterTaskDefinition", None, 0.0)] * 22 \
        + [("eventbridge.PutRule", None, 0.0)] * 150 + [("dynamodb.PutItem", None, 0.0)] * 500
    # one call at a time: 20 task definitions at once, 2 more at 1/s; 50 rules at once,
    # 100 more at 50/s
    assert quota_sim.sequential(sequence) == pytest.approx(2.0 + 2.0)
    assert quota_sim.floor_s({"ecs.RegisterTaskDefinition": 22,
                              "eventbridge.PutRule": 150}) == pytest.approx(2.0)


def test_the_concurrent_apply_goes_at_the_slowest_buckets_pace():
    zero = dict.fromkeys((*quota_sim.TD_CALLS, *quota_sim.SCHEDULE_CALLS,
                          *quota_sim.REGISTRY_CALLS), 0.0)
    # 22 task definitions (20 at once, 2 more at 1/s) beside 150 rules (300 EventBridge
    # writes: 50 at once, 250 more at 50/s): the rules' 5 s, the registrations in parallel
    assert quota_sim.concurrent(150, 22, zero) == pytest.approx(5.0)
    # 40 task definitions: 20 more at 1/s, the rules meanwhile
    assert quota_sim.concurrent(150, 40, zero) == pytest.approx(20.0)
    # with call time: one kind of change gets half of the workers, each change's calls one
    # after the other
    half = quota_sim.WORKERS // 2
    assert quota_sim.concurrent(4 * half, 1, {**zero, "eventbridge.PutRule": 0.5}) == \
        pytest.approx(4 * 0.5, abs=0.01)


def test_metrics_lines_are_parsed():
    match = _SERIES.match('cronctl_aws_api_calls_total{service="ecs",operation="RunTask"} 3.0')
    assert match and match["labels"] == 'service="ecs",operation="RunTask"'


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


def test_daemon_rss_row(tmp_path):
    assert bench_main(["--only", "daemon", "--rss-n", "2", "--out", str(tmp_path)]) == 0
    rss, = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert rss["name"] == "daemon.rss" and rss["n"] == 2 and rss["passes"] >= 3
    assert rss["rss_mib"] > 0 and rss["floor_rss_mib"] > 0 and rss["floor_calls"] > 0
    # the daemon reads a commit, as deployed: its first pass observes, the next are cheap
    assert rss["calls_by_operation"]["eventbridge.ListRules"] == 1


def test_runtask_throttling_simulation():
    assert throttled([0.0] * 100) == 0
    assert throttled([0.0] * 101) == 1
    assert throttled([i / 20 for i in range(200)]) == 0  # 20/s is the sustained rate

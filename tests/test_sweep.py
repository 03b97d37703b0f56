"""Cheap passes at a new commit, against the emulator, with a fleet of a thousand crons:
the warm daemon applies one changed cron with its writes alone (no read), a drift sweep makes
its list calls and a budgeted rotation of one-by-one reads, repairs what a list shows at once
and what only a one-by-one read shows within its rotation, and ``--full-check`` reads (and
repairs) everything. Call counts come from botocore's hooks (``CallCounter``), never timing."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git
import pytest

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients
from reconciler.cli import main
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.plan.pass_check import PassKind
from reconciler.core.plan.render import render_text
from reconciler.service.control.reconcile import PassResult, run_pass
from reconciler.service.control.reconcile_loop import ReconcileLoop
from tests.support.reconcile_env import cron_yaml, prepare, write_crons
from tests.support.waiting import wait_for

N = 1000    # issue 10: "one change among 1,000 makes at most 6"
IMAGES = 4
INTERVAL_S, PERIOD_S = 3600.0, 4 * 3600.0   # the rotation: every rule read in 4 sweeps
READS = ("eventbridge.ListTargetsByRule", "eventbridge.DescribeRule",
         "eventbridge.ListTagsForResource", "scheduler.GetSchedule",
         "ecs.DescribeTaskDefinition")
LISTS = ("eventbridge.ListRules", "scheduler.ListSchedules", "ecs.ListTaskDefinitionFamilies")
A, B = "a" * 40, "b" * 40


def name(i: int) -> str:
    return f"job-{i:04d}"


def fleet(commit: str, edited: frozenset[int] = frozenset(), n: int = N) -> Snapshot:
    files = {}
    for i in range(n):
        schedule = "rate(7 minutes)" if i in edited else f"cron({i % 60} {i % 24} * * ? *)"
        files[f"crons.d/{name(i)}.yaml"] = cron_yaml(
            schedule, f"busybox:1.{i % IMAGES}", env={"JOB": str(i)}).encode()
    return Snapshot(commit=commit, files=files)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Fleet:
    """``run_pass`` on ``snapshot`` (switched by the test), keeping every result."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.results: list[PassResult] = []

    def __call__(self, *args, **kwargs) -> PassResult:
        result = run_pass(*args, source=self.snapshot, **kwargs)
        self.results.append(result)
        return result

    def next(self, predicate, message: str, timeout: float = 60) -> PassResult:
        seen = len(self.results)
        return wait_for(lambda: next((r for r in self.results[seen:] if predicate(r)), None),
                        timeout=timeout, message=message)


def reads(calls: dict) -> dict:
    return {k: v for k, v in calls.items() if k in READS}


def rule_of(clients, i: int) -> dict:
    return clients.client("events").describe_rule(Name=f"test-{name(i)}")


def targets_of(clients, i: int) -> list:
    return clients.client("events").list_targets_by_rule(Rule=f"test-{name(i)}")["Targets"]


@pytest.fixture
def env(settings):
    # an increased quota: N rules fit. And a raised EventBridge API rate: creating the fleet
    # is 2 paced calls per rule (PutRule, PutTargets: 50 a second by default, 40 s for N)
    # while what is asserted is the calls each pass makes, never how long they took; the
    # rotation's read budget stays the binding one (the quota's share of an interval,
    # ``quotas.read_budget``, is far above it at either rate).
    settings = settings.with_(rules_quota=5000, api_rates=("events=100000/100000",))
    clients = prepare(settings)
    version = registry.read_namespace(clients, settings).version
    return clients, settings.with_(recorded_version=version, drift_check_s=INTERVAL_S,
                                   deep_check_s=PERIOD_S)


def test_a_warm_daemon_applies_one_change_with_its_writes_and_sweeps_within_its_budget(env):
    clients, settings = env
    clock, passes = Clock(), Fleet(fleet(A))
    loop = ReconcileLoop(AwsClients(settings), settings.with_(interval_s=0.05),
                         owner_id="sweeper", pass_fn=passes, clock=clock)
    loop.start()
    try:
        first = passes.next(lambda r: True, "the first pass", timeout=120)
        assert first.converged and first.check.kind == PassKind.SWEEP
        noop = passes.next(lambda r: r.cheap, "a cheap pass")
        assert noop.api_calls == {}                       # a no-op: no call at all

        # one changed cron among N: its writes, the record cleared and written; nothing read
        passes.snapshot = fleet(B, frozenset({7}))
        change = passes.next(lambda r: r.commit == B, "the pass at the new commit")
        assert change.check.kind == PassKind.INCREMENTAL and change.converged
        assert sum(change.api_calls.values()) <= 6, change.api_calls
        assert change.api_calls == {"dynamodb.TransactWriteItems": 3, "eventbridge.PutRule": 1,
                                    "eventbridge.TagResource": 1,
                                    "eventbridge.PutTargets": 1}
        assert [c.id for c in change.applied] == ["job-0007/schedule/update",
                                                  "job-0007/registry/update"]
        assert rule_of(clients, 7)["ScheduleExpression"] == "rate(7 minutes)"
        assert passes.next(lambda r: True, "the next pass").cheap

        # drift made outside cronctl
        events = clients.client("events")
        events.disable_rule(Name=f"test-{name(100)}")
        events.remove_targets(Rule=f"test-{name(200)}", Ids=["cronctl-dispatch"])
        events.delete_rule(Name=f"test-{name(200)}")
        events.remove_targets(Rule=f"test-{name(399)}", Ids=["cronctl-dispatch"])

        budget = math.ceil(N * INTERVAL_S / PERIOD_S)
        clock.now += timedelta(seconds=INTERVAL_S)       # the drift check is due
        sweep = passes.next(lambda r: r.check and r.check.kind == PassKind.SWEEP, "a sweep")
        assert "drift check due" in sweep.check.reason and sweep.converged
        calls = sweep.api_calls
        assert calls["eventbridge.ListRules"] <= math.ceil(N / 100) + 1
        assert calls["eventbridge.ListTargetsByRule"] <= budget
        assert calls.get("ecs.DescribeTaskDefinition", 0) <= IMAGES
        assert sum(reads(calls).values()) <= budget + IMAGES
        # what a list shows is repaired at once
        assert rule_of(clients, 100)["State"] == "ENABLED"
        assert rule_of(clients, 200)["State"] == "ENABLED" and targets_of(clients, 200)
        # the plan says what was not read one by one
        check = sweep.plan.deep_check
        td_budget = math.ceil(IMAGES * INTERVAL_S / PERIOD_S)
        assert (check.read, check.listed) == (budget + td_budget,
                                              N - 1 - budget + IMAGES - td_budget)
        assert "Deep check: " in render_text(sweep.plan)

        # a removed target is only seen by a one-by-one read: within the rotation
        sweeps = 1
        while not targets_of(clients, 399):
            assert sweeps < math.ceil(N / budget), "the rotation did not reach the rule"
            clock.now += timedelta(seconds=INTERVAL_S)
            passes.next(lambda r: r.check and r.check.kind == PassKind.SWEEP, "a sweep")
            sweeps += 1
        recorded = registry.read_sweep(clients, settings)
        assert recorded is not None and recorded.of("rules").started is not None
    finally:
        assert loop.stop(timeout=10)

    # --full-check reads every resource and repairs everything
    events.remove_targets(Rule=f"test-{name(5)}", Ids=["cronctl-dispatch"])
    events.disable_rule(Name=f"test-{name(6)}")
    full = run_pass(clients, settings, dry_run=False, source=passes.snapshot,
                    full_check=True)
    assert full.check.kind == PassKind.FULL and full.converged
    assert full.api_calls["eventbridge.ListTargetsByRule"] >= N
    assert full.plan.deep_check is None
    assert {c.id for c in full.applied} == {"job-0005/schedule/update",
                                            "job-0006/schedule/update"}
    assert targets_of(clients, 5) and rule_of(clients, 6)["State"] == "ENABLED"


# --- the CLI ------------------------------------------------------------------------------

CRONS = 30


@pytest.fixture
def repo_env(env, tmp_path):
    clients, settings = env
    repo = git.Repo.init(tmp_path / "repo")
    with repo.config_writer() as config:
        config.set_value("user", "name", "test").set_value("user", "email", "t@example.com")
    return clients, settings.with_(repo=str(tmp_path / "repo")), repo


def commit(repo: git.Repo, edited: int | None, message: str) -> str:
    crons = {name(i): cron_yaml("rate(9 minutes)" if i == edited else
                                f"cron({i} 5 * * ? *)") for i in range(CRONS)}
    write_crons(Path(repo.working_tree_dir), crons)
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo.head.commit.hexsha




def test_cli_at_a_new_commit_lists_and_reads_its_budget_and_full_check_reads_all(
        repo_env, counted, capsys):
    clients, settings, repo = repo_env
    commit(repo, None, "crons")
    args = ["reconcile", "--repo", settings.repo, "--namespace", "test",
            "--deep-check-period", "86400"]
    assert main(args) == 0
    capsys.readouterr()
    rotation = registry.read_sweep(clients, settings)   # the first pass listed nothing
    commit(repo, 3, "job-0003 every 9 minutes")

    before = Counter(counted.snapshot())
    assert main([*args, "--output", "json"]) == 0
    calls = Counter(counted.snapshot()) - before
    data = json.loads(capsys.readouterr().out)
    budget = math.ceil(CRONS * 3600 / 86400)
    assert data["check"]["kind"] == "sweep"
    assert calls["eventbridge.ListTargetsByRule"] == budget
    assert calls["ecs.DescribeTaskDefinition"] <= 1
    assert data["deep_check"]["read"] == budget + 1
    assert data["deep_check"]["not_read"] == CRONS - budget
    # the first pass found no rule: what it created since was written, so known from then
    assert data["deep_check"]["last_read_no_earlier_than"] is not None
    assert [c["id"] for c in data["changes"]] == ["job-0003/schedule/update",
                                                  "job-0003/registry/update"]
    after = registry.read_sweep(clients, settings)
    assert after.of("rules").after == f"test-{name(budget - 1)}" != rotation.of("rules").after

    # the next commit reads the next names of the rotation (the CLI remembers nothing)
    commit(repo, 4, "job-0004 every 9 minutes")
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"Deep check: {budget + 1} resources read this pass, {CRONS - budget} not" in out
    assert main(args) == 0
    assert registry.read_sweep(clients, settings).of("rules").after == \
        f"test-{name(2 * budget - 1)}"

    # --full-check reads every rule
    capsys.readouterr()
    before = Counter(counted.snapshot())
    assert main([*args, "--full-check", "--output", "json"]) == 0
    calls = Counter(counted.snapshot()) - before
    assert calls["eventbridge.ListTargetsByRule"] == CRONS
    assert "deep_check" not in json.loads(capsys.readouterr().out)


def test_the_deep_check_period_is_a_setting(monkeypatch, capsys):
    from reconciler.settings import from_environment

    assert from_environment().deep_check_s == 86400
    monkeypatch.setenv("CRONCTL_DEEP_CHECK_S", "7200")
    assert from_environment().deep_check_s == 7200
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--deep-check-period" in text and "CRONCTL_DEEP_CHECK_S" in text
    assert main(["reconcile", "--deep-check-period", "0"]) == 1


def test_a_scheduler_sweep_reads_its_budget_and_repairs_what_list_schedules_shows(settings):
    settings = settings.with_(scheduler="scheduler")
    clients = prepare(settings)
    version = registry.read_namespace(clients, settings).version
    settings = settings.with_(recorded_version=version)
    first = run_pass(clients, settings, dry_run=False, source=fleet(A, n=CRONS))
    assert first.converged, (first.errors, first.plan.errors)
    scheduler = clients.client("scheduler")
    live = scheduler.get_schedule(GroupName="test", Name=name(2))
    scheduler.update_schedule(**{k: live[k] for k in (
        "Name", "GroupName", "ScheduleExpression", "FlexibleTimeWindow", "Target")},
        State="DISABLED")

    result = run_pass(clients, settings, dry_run=False, source=fleet(B, frozenset({5}),
                                                                     n=CRONS))
    assert result.check.kind == PassKind.SWEEP and result.converged
    budget = math.ceil(CRONS * 3600 / 86400)
    assert result.api_calls["scheduler.GetSchedule"] <= budget
    assert {c.id for c in result.applied} >= {"job-0002/schedule/update",
                                              "job-0005/schedule/update"}
    assert scheduler.get_schedule(GroupName="test", Name=name(2))["State"] == "ENABLED"
    assert scheduler.get_schedule(GroupName="test", Name=name(5))["ScheduleExpression"] == \
        "rate(7 minutes)"
    assert result.plan.deep_check.listed >= CRONS - budget

"""Cheap passes: a pass at the commit the last converged pass applied makes no control-plane
call (the CLI: one DynamoDB request beyond its start-up reads; a warm daemon: none at all);
drift is found by ``--full-check`` and the daemon's drift check; a new commit, a plain folder or
a pass that did not converge make the next pass a full one. Call counts come from botocore's
``before-call`` hooks (``CallCounter``), never from timing."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git
import pytest

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients
from reconciler.cli import main
from reconciler.core.plan.model import Plan
from reconciler.core.plan.pass_check import (
    AppliedRecord,
    PassFacts,
    PassKind,
    PassPolicy,
    ago,
    cheap_summary,
    decide,
)
from reconciler.errors import PermanentError
from reconciler.service.control.apply import ApplyError, Skipped
from reconciler.service.control.reconcile import PassResult, run_pass
from reconciler.service.control.reconcile_loop import ReconcileLoop
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons
from tests.support.waiting import wait_for

CRONS = {f"job{i}": cron_yaml(f"cron({i} 5 * * ? *)") for i in range(3)}
CONTROL_PLANE = ("eventbridge.", "scheduler.", "ecs.", "sts.")
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
A, B = "a" * 40, "b" * 40


# --- the decision, a pure function -------------------------------------------------------

def record(commit=A, version=3, at=T0, generation=7) -> AppliedRecord:
    return AppliedRecord(commit, version, at, generation)


def facts(commit=A, *, full=False, generation=7, now=T0 + timedelta(minutes=5), **read):
    return PassFacts(commit=commit, settings_version=3, now=now, full_check=full,
                     generation=generation, **read)


def known(generation=7, version=3, at=T0):
    from reconciler.core.plan.known import KnownState
    from reconciler.core.plan.model import Observed

    return KnownState(Observed(), at, generation, version)


HOURLY = PassPolicy(drift_check_s=3600)
WARM = PassPolicy(drift_check_s=3600, remembered=record())

DECISIONS = [
    # (facts, policy, kind, from memory, reason contains)
    (facts(None), WARM, PassKind.FULL, False, "folder"),
    (facts(full=True), WARM, PassKind.FULL, False, "asked for"),
    (facts(), WARM, PassKind.CHEAP, True, "applied"),
    (facts(), replace(WARM, verify=True), PassKind.READ, False, "record"),
    (facts(generation=8), WARM, PassKind.READ, False, "record"),   # lease changed hands
    (facts(generation=None), PassPolicy(remembered=record(generation=None)), PassKind.READ,
     False, "record"),                                             # unfenced: no memory
    (facts(B), WARM, PassKind.SWEEP, False, "new commit (applied: aaaaaaa)"),
    (facts(now=T0 + timedelta(hours=1)), WARM, PassKind.SWEEP, False, "drift check due"),
    (facts(), HOURLY, PassKind.READ, False, "record"),
    (facts(record=None, record_read=True), HOURLY, PassKind.SWEEP, False, "no converged"),
    (facts(record=record(), record_read=True), HOURLY, PassKind.CHEAP, False, "applied"),
    (facts(record=record(generation=2), record_read=True), HOURLY, PassKind.CHEAP, False,
     "applied"),                                                   # another holder's record
    (facts(record=record(version=2), record_read=True), HOURLY, PassKind.FULL, False,
     "settings changed"),
    (facts(B, record=record(), record_read=True), HOURLY, PassKind.SWEEP, False, "new commit"),
    (facts(now=T0 + timedelta(days=9), record=record(), record_read=True), PassPolicy(),
     PassKind.CHEAP, False, "applied"),                            # the CLI: no schedule
    (facts(now=T0 + timedelta(hours=2), record=record(), record_read=True), HOURLY,
     PassKind.SWEEP, False, "last check 2 h ago"),
    # an active window starts or ends: what was applied holds until then
    (facts(now=T0 + timedelta(minutes=30), record=replace(
        record(), valid_until=T0 + timedelta(minutes=30)), record_read=True), HOURLY,
     PassKind.SWEEP, False, "active window started or ended"),
    (facts(now=T0 + timedelta(minutes=29), record=replace(
        record(), valid_until=T0 + timedelta(minutes=30)), record_read=True), HOURLY,
     PassKind.CHEAP, False, "applied"),
    (facts(now=T0 + timedelta(minutes=30)), replace(WARM, remembered=replace(
        record(), valid_until=T0 + timedelta(minutes=30))), PassKind.SWEEP, False,
     "active window"),
    # the daemon's known state (same generation and settings version): nothing observed
    (facts(B), replace(WARM, known=known()), PassKind.INCREMENTAL, False, "new commit"),
    (facts(B), PassPolicy(drift_check_s=3600, known=known()), PassKind.INCREMENTAL, False,
     "known state"),                                               # no record needed
    (facts(B), replace(WARM, known=known(), verify=True), PassKind.READ, False, "record"),
    (facts(B, record=record(), record_read=True), replace(HOURLY, known=known()),
     PassKind.INCREMENTAL, False, "new commit"),
    (facts(B), replace(WARM, known=known(generation=8)), PassKind.SWEEP, False,
     "new commit"),                                                # another tenure's state
    (facts(B), replace(WARM, known=known(version=2)), PassKind.SWEEP, False, "new commit"),
    (facts(B, now=T0 + timedelta(hours=1)), replace(WARM, known=known()), PassKind.SWEEP,
     False, "drift check due (last sweep 1 h ago)"),
    (facts(), replace(WARM, known=known()), PassKind.CHEAP, True, "applied"),
    (facts(full=True), replace(WARM, known=known()), PassKind.FULL, False, "asked for"),
    (facts(record=record(version=2), record_read=True), replace(HOURLY, known=known()),
     PassKind.FULL, False, "settings changed"),
]


@pytest.mark.parametrize("given,policy,kind,from_memory,reason", DECISIONS)
def test_full_or_cheap_is_decided_from_the_commit_the_record_and_the_schedule(
        given, policy, kind, from_memory, reason):
    decision = decide(given, policy)
    assert (decision.kind, decision.from_memory) == (kind, from_memory)
    assert reason in decision.reason
    assert (decision.record is not None) == (kind == PassKind.CHEAP)


def test_the_cheap_line_says_what_is_applied_and_when_it_was_last_checked():
    assert cheap_summary(record(), T0 + timedelta(minutes=12, seconds=5)) == (
        "No changes: commit aaaaaaa is applied (last check 12 min ago; "
        "`cronctl reconcile --full-check` reads everything).")
    assert [ago(s) for s in (5, 60, 3599, 3600, 3660, 3 * 86400)] == \
        ["5 s", "1 min", "59 min", "1 h", "1 h 1 min", "3 days"]


def _result(**changes) -> PassResult:
    base = PassResult(commit=A, plan=Plan(commit=A))
    return replace(base, **changes)


CHANGE = object()
CONVERGED = [
    (_result(), True),
    (_result(commit=None, plan=Plan(commit=None)), False),          # a folder: not recorded
    (_result(plan=None), False),
    (_result(dry_run=True), False),
    (_result(errors=("source unreadable",)), False),
    (_result(apply_errors=(ApplyError("job0", "schedule", "update", "denied"),)), False),
    (_result(skipped=(Skipped(CHANGE, "job0/schedule/update"),)), False),
    (_result(plan=Plan(commit=A, held_back=frozenset({"job1"}))), False),
    (_result(lease_lost=True), False),
    (_result(settings_changed=True), False),
]


@pytest.mark.parametrize("result,converged", CONVERGED)
def test_only_a_whole_applied_plan_at_a_commit_converges(result, converged):
    assert result.converged is converged


# --- passes against the emulator ----------------------------------------------------------

def commit(repo: git.Repo, crons: dict[str, str], message: str) -> str:
    root = Path(repo.working_tree_dir)
    write_crons(root, crons)
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo.head.commit.hexsha


@pytest.fixture
def env(settings, tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    with repo.config_writer() as config:
        config.set_value("user", "name", "test").set_value("user", "email", "t@example.com")
    clients = prepare(settings)
    version = registry.read_namespace(clients, settings).version
    return clients, settings.with_(repo=str(tmp_path / "repo"), recorded_version=version), repo


def control_plane(calls) -> dict:
    return {k: v for k, v in calls.items() if k.startswith(CONTROL_PLANE)}


def delete_rule(clients, name: str) -> None:
    events = clients.client("events")
    ids = [t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"]]
    if ids:
        events.remove_targets(Rule=name, Ids=ids)
    events.delete_rule(Name=name)


def test_a_converged_pass_is_recorded_and_the_next_one_at_its_commit_reads_one_item(env):
    clients, settings, repo = env
    sha = commit(repo, CRONS, "three crons")
    first = run_pass(clients, settings, dry_run=False)
    assert first.ok and first.converged and first.check.kind == PassKind.SWEEP
    assert first.recorded.commit == sha
    stored, _ = registry.read_applied(clients, settings)
    assert stored == first.recorded and stored.settings_version == settings.recorded_version

    second = run_pass(clients, settings, dry_run=False)
    assert second.ok and second.cheap and not second.plan.has_changes
    assert second.api_calls == {"dynamodb.BatchGetItem": 1}
    assert second.summary.startswith(f"No changes: commit {sha[:7]} is applied")
    dry = run_pass(clients, settings, dry_run=True)
    assert dry.cheap and dry.api_calls == {"dynamodb.BatchGetItem": 1}
    # the registry's cron scan never sees the record
    assert sorted(registry.scan(clients, settings)) == ["job0", "job1", "job2"]


def test_a_plain_folder_is_always_checked_in_full(settings, tmp_path):
    clients = prepare(settings)
    folder = write_crons(tmp_path / "plain", CRONS)
    settings = settings.with_(repo=str(folder))
    assert run_pass(clients, settings, dry_run=False).converged is False
    again = run_pass(clients, settings, dry_run=False)
    assert again.check.kind == PassKind.FULL and "folder" in again.check.reason
    assert again.api_calls.get("eventbridge.ListRules") == 1
    assert registry.read_applied(clients, settings)[0] is None


def test_drift_is_not_seen_by_a_cheap_pass_and_repaired_by_a_full_check(env):
    clients, settings, repo = env
    commit(repo, CRONS, "three crons")
    assert run_pass(clients, settings, dry_run=False).converged
    clean = live_state(clients, settings)
    delete_rule(clients, "test-job1")

    cheap = run_pass(clients, settings, dry_run=False)
    assert cheap.cheap and control_plane(cheap.api_calls) == {}
    assert "test-job1" not in live_state(clients, settings)["rules"]

    full = run_pass(clients, settings, dry_run=False, full_check=True)
    assert full.check.kind == PassKind.FULL and full.converged
    assert [c.id for c in full.applied] == ["job1/schedule/create"]
    assert live_state(clients, settings) == clean
    assert full.recorded.checked_at >= cheap.recorded.checked_at


def test_a_new_commit_runs_a_sweep(env):
    clients, settings, repo = env
    first = commit(repo, CRONS, "three crons")
    assert run_pass(clients, settings, dry_run=False).converged
    edited = {**CRONS, "job0": cron_yaml("cron(30 6 * * ? *)")}
    second = commit(repo, edited, "job0 at 06:30")
    result = run_pass(clients, settings, dry_run=False)
    assert result.check.kind == PassKind.SWEEP and f"applied: {first[:7]}" in result.check.reason
    assert result.converged and result.recorded.commit == second
    assert live_state(clients, settings)["rules"]["test-job0"]["expression"] == \
        "cron(30 6 * * ? *)"


def test_a_pass_that_did_not_converge_makes_the_next_one_not_cheap(env, monkeypatch):
    clients, settings, repo = env
    commit(repo, CRONS, "three crons")
    assert run_pass(clients, settings, dry_run=False).converged
    clean = live_state(clients, settings)
    delete_rule(clients, "test-job2")

    from reconciler.adapters import rules

    real_put = rules.put

    def refused(clients, namespace, cron, *args, **kwargs):
        if cron == "job2":
            raise PermanentError("PutRule refused (injected)")
        return real_put(clients, namespace, cron, *args, **kwargs)

    monkeypatch.setattr(rules, "put", refused)
    failed = run_pass(clients, settings, dry_run=False, full_check=True)
    assert failed.apply_errors and not failed.converged
    assert registry.read_applied(clients, settings)[0] is None   # cleared
    monkeypatch.setattr(rules, "put", real_put)

    after = run_pass(clients, settings, dry_run=False)
    assert after.check.kind == PassKind.SWEEP and "no converged pass" in after.check.reason
    assert after.converged and live_state(clients, settings) == clean
    assert run_pass(clients, settings, dry_run=False).cheap


# --- the CLI --------------------------------------------------------------------------------



def test_cli_at_the_applied_commit_reads_one_record_beyond_its_start_up(env, counted, capsys):
    clients, settings, repo = env
    sha = commit(repo, CRONS, "three crons")
    args = ["reconcile", "--repo", settings.repo, "--namespace", "test"]
    assert main(args) == 0
    assert "Plan: " in capsys.readouterr().out

    before = Counter(counted.snapshot())
    assert main([*args, "--detailed-exitcode"]) == 0
    calls = Counter(counted.snapshot()) - before
    out = capsys.readouterr().out
    assert f"No changes: commit {sha[:7]} is applied (last check " in out
    # start-up: the namespace settings (GetItem); the lease: taken and released (UpdateItem);
    # the pass: the record (one BatchGetItem). No control-plane call, no Scan.
    assert dict(calls) == {"dynamodb.GetItem": 1, "dynamodb.UpdateItem": 2,
                           "dynamodb.BatchGetItem": 1}

    assert main([*args, "--output", "json", "--dry-run"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["check"]["kind"] == "cheap" and data["check"]["applied_commit"] == sha
    assert data["api_calls"] == {"dynamodb.BatchGetItem": 1}
    assert main([*args, "--output", "markdown", "--dry-run"]) == 0
    assert f"No changes: commit {sha[:7]} is applied" in capsys.readouterr().out


def test_cli_full_check_finds_and_repairs_what_a_cheap_pass_does_not_see(env, capsys):
    clients, settings, repo = env
    commit(repo, CRONS, "three crons")
    args = ["reconcile", "--repo", settings.repo, "--namespace", "test"]
    assert main(args) == 0
    clean = live_state(clients, settings)
    delete_rule(clients, "test-job0")
    capsys.readouterr()
    assert main([*args, "--detailed-exitcode"]) == 0
    assert "is applied" in capsys.readouterr().out
    assert "test-job0" not in live_state(clients, settings)["rules"]
    assert main([*args, "--full-check", "--dry-run", "--detailed-exitcode"]) == 2
    assert "+ create schedule job0" in capsys.readouterr().out
    assert main([*args, "--full-check", "--detailed-exitcode"]) == 2
    assert live_state(clients, settings) == clean


# --- the daemon -----------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    """``run_pass``, keeping every result in order."""

    def __init__(self) -> None:
        self.results: list[PassResult] = []

    def __call__(self, *args, **kwargs) -> PassResult:
        result = run_pass(*args, **kwargs)
        self.results.append(result)
        return result

    def after(self, count: int, message: str) -> list[PassResult]:
        return wait_for(lambda: self.results[count:] if len(self.results) > count else None,
                        timeout=20, message=message)


def test_a_warm_daemon_makes_no_call_at_the_applied_commit_and_checks_drift_on_schedule(env):
    clients, settings, repo = env
    commit(repo, CRONS, "three crons")
    clock, passes = Clock(), Recorder()
    loop = ReconcileLoop(AwsClients(settings), settings.with_(interval_s=0.05,
                                                              drift_check_s=3600),
                         owner_id="warm", pass_fn=passes, clock=clock)
    loop.start()
    try:
        first = passes.after(0, "the first pass")[0]
        assert first.converged and first.check.kind == PassKind.SWEEP
        clean = live_state(clients, settings)
        warm = passes.after(2, "two more passes")
        for result in warm[:2]:
            assert result.cheap and result.check.from_memory and result.api_calls == {}
        delete_rule(clients, "test-job1")
        seen = len(passes.results)
        for result in passes.after(seen + 1, "passes after the deletion")[:2]:
            assert result.cheap and result.api_calls == {}
        assert "test-job1" not in live_state(clients, settings)["rules"]

        loop.trigger()   # SIGHUP / webhook: still cheap, one read of the record
        seen = len(passes.results)
        wait_for(lambda: any(r.cheap and r.api_calls == {"dynamodb.BatchGetItem": 1}
                             for r in passes.results[seen:]), timeout=20,
                 message="a triggered pass that reads the record")
        assert "test-job1" not in live_state(clients, settings)["rules"]

        clock.now += timedelta(seconds=3600)   # the drift check is due
        wait_for(lambda: "test-job1" in live_state(clients, settings)["rules"], timeout=20,
                 message="the drift check repairing the rule")
        drift = wait_for(lambda: next((r for r in passes.results
                                       if "drift" in r.check.reason), None),
                         timeout=20, message="the drift check's result")
        assert drift.check.kind == PassKind.SWEEP and "drift check due" in drift.check.reason
        assert drift.converged and live_state(clients, settings) == clean
        after = passes.after(passes.results.index(drift) + 1, "a pass after the drift check")
        assert after[0].cheap and after[0].api_calls == {}   # warm again
    finally:
        assert loop.stop(timeout=10)


def test_a_pass_that_dies_while_applying_leaves_no_record(env, monkeypatch):
    from reconciler.adapters import rules
    from tests.support.reconcile_env import SimulatedCrash

    clients, settings, repo = env
    commit(repo, CRONS, "three crons")
    assert run_pass(clients, settings, dry_run=False).converged
    commit(repo, {**CRONS, "job1": cron_yaml("rate(2 hours)")}, "job1 every 2 hours")
    real_put = rules.put

    def dies(*args, **kwargs):
        raise SimulatedCrash("the process died in PutRule")

    monkeypatch.setattr(rules, "put", dies)
    with pytest.raises(SimulatedCrash):
        run_pass(clients, settings, dry_run=False)
    assert registry.read_applied(clients, settings)[0] is None
    monkeypatch.setattr(rules, "put", real_put)
    repo.git.reset("--hard", "HEAD~1")    # even back at the recorded commit: a full pass
    result = run_pass(clients, settings, dry_run=False)
    assert result.check.kind == PassKind.SWEEP and result.converged


def test_a_daemon_started_at_the_applied_commit_reads_the_record_once(env):
    clients, settings, repo = env
    commit(repo, CRONS, "three crons")
    assert run_pass(clients, settings, dry_run=False).converged   # e.g. cronctl reconcile
    passes = Recorder()
    loop = ReconcileLoop(AwsClients(settings), settings.with_(interval_s=0.05),
                         owner_id="cold", pass_fn=passes)
    loop.start()
    try:
        passes.after(1, "two passes")
        first, second = passes.results[:2]
        assert first.cheap and first.api_calls == {"dynamodb.BatchGetItem": 1}
        assert second.cheap and second.api_calls == {}
    finally:
        assert loop.stop(timeout=10)


def test_a_cheap_pass_still_notices_changed_namespace_settings(env):
    from tests.support.reconcile_env import record_settings

    clients, settings, repo = env
    commit(repo, CRONS, "three crons")
    assert run_pass(clients, settings, dry_run=False).converged
    record_settings(clients, settings.with_(rules_quota=500))   # cronctl bootstrap, meanwhile
    result = run_pass(clients, settings, dry_run=False)
    assert result.settings_changed and result.plan is None and not result.cheap
    assert result.api_calls == {"dynamodb.BatchGetItem": 1}


def test_the_drift_check_interval_is_a_daemon_setting(monkeypatch, capsys):
    from reconciler.errors import ConfigError
    from reconciler.settings import from_environment

    assert from_environment().drift_check_s == 3600
    monkeypatch.setenv("CRONCTL_DRIFT_CHECK_S", "600")
    assert from_environment().drift_check_s == 600
    assert from_environment(drift_check_s=90.0).drift_check_s == 90
    monkeypatch.setenv("CRONCTL_DRIFT_CHECK_S", "0")
    with pytest.raises(ConfigError, match="CRONCTL_DRIFT_CHECK_S must be a positive number"):
        from_environment()
    monkeypatch.delenv("CRONCTL_DRIFT_CHECK_S")
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--drift-check-interval" in text and "env CRONCTL_DRIFT_CHECK_S; default 3600" in text
    assert main(["serve", "--drift-check-interval", "-5"]) == 2
    with pytest.raises(SystemExit):
        main(["reconcile", "--help"])
    assert "--full-check" in capsys.readouterr().out


def test_a_cheap_pass_is_one_plain_line_on_a_terminal():
    import io
    import re

    from reconciler import logs

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    logs.configure(stream=stream)
    line = "No changes: commit aaaaaaa is applied (last check 12 min ago; ...)."
    logs.get_logger("t").info(
        "reconcile.pass", commit=A, dry_run=False, check="cheap",
        check_reason="the commit is applied", summary=line, create=0, update=0, delete=0,
        applied=0, plan_errors=0, apply_errors=0, skipped=0, errors=[], duration_s=0.01,
        aws_calls=0, aws_calls_by_operation={})
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())
    assert f"reconcile: {line}" in plain and "check_reason" not in plain
    assert "aws_calls=0" in plain


def test_an_active_window_boundary_makes_the_next_pass_at_the_same_commit_a_sweep(env):
    """Rules backend: the plan disables a rule outside its active window. What a converged
    pass applied holds until the window starts; from then, a pass at the same commit is full
    and enables the rule."""
    clients, settings, repo = env
    window = ('schedule: "cron(0 5 * * ? *)"\ncontainer:\n  image: busybox\n'
              'active:\n  from: "2026-12-03T00:00:00"\n')
    commit(repo, {"windowed": window}, "a cron that starts on Dec 3")
    before = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    first = run_pass(clients, settings, dry_run=False, now=before)
    assert first.converged
    assert first.recorded.valid_until == datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    rule = clients.client("events").describe_rule(Name="test-windowed")
    assert rule["State"] == "DISABLED"
    still = run_pass(clients, settings, dry_run=False, now=before + timedelta(hours=6))
    assert still.cheap
    after = run_pass(clients, settings, dry_run=False,
                     now=datetime(2026, 12, 3, 0, 1, tzinfo=UTC))
    assert after.check.kind == PassKind.SWEEP and "active window" in after.check.reason
    assert clients.client("events").describe_rule(Name="test-windowed")["State"] == "ENABLED"
    assert after.converged and after.recorded.valid_until is None

"""Failure injection: the Nth AWS call of a pass fails (an AWS error, or the process "dies");
the next pass converges to exactly what a clean apply makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.service.control.reconcile import run_pass
from tests.support.moto import reset_moto
from tests.support.reconcile_env import (
    FaultInjector,
    SimulatedCrash,
    cron_yaml,
    live_state,
    prepare,
    write_crons,
)

CRONS = {
    "alpha": cron_yaml("cron(0 5 * * ? *)", "perl", env={"A": "1"}),
    "beta": cron_yaml("rate(5 minutes)", "perl"),
    "gamma": cron_yaml("cron(*/10 * * * ? *)", "busybox"),
}


_CLIENTS = {}


def fresh(aws, settings, root=None):
    """A reset moto state with the namespace's base infrastructure; clients are reused
    (creating boto3 clients is the slow part of an iteration)."""
    reset_moto(aws)
    key = (aws, settings.namespace)
    _CLIENTS[key] = prepare(settings, _CLIENTS.get(key))
    _CLIENTS[key].account_id()  # asked once per clients: every pass then makes the same calls
    return _CLIENTS[key]


def inactive_revisions(clients) -> list[str]:
    return clients.client("ecs").list_task_definitions(status="INACTIVE")["taskDefinitionArns"]


@pytest.fixture
def reference(aws, settings, tmp_path):
    """The state of a clean apply, and how many AWS calls that pass made."""
    settings = settings.with_(repo=str(tmp_path))
    write_crons(tmp_path, CRONS)
    clients = fresh(aws, settings, tmp_path)
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    return settings, live_state(clients, settings), sum(result.api_calls.values())


@pytest.mark.parametrize("crash", [False, True], ids=["aws-error", "crash"])
def test_a_failure_at_any_call_is_repaired_by_the_next_pass(aws, reference, crash):
    settings, clean, total = reference
    assert total >= 15
    for fail_at in range(1, total + 1):
        clients = fresh(aws, settings, None)
        injector = FaultInjector(clients, fail_at, crash=crash)
        try:
            first = run_pass(clients, settings, dry_run=False)
            assert not first.ok, f"call {fail_at} ({injector.failed}) failed unnoticed"
        except SimulatedCrash:
            assert crash
        assert injector.failed, f"call {fail_at} was never made"
        injector.disarm()
        repaired = run_pass(clients, settings, dry_run=False)
        assert repaired.ok, (fail_at, injector.failed, repaired)
        assert live_state(clients, settings) == clean, (fail_at, injector.failed)
        assert inactive_revisions(clients) == [], (fail_at, injector.failed)
        settled = run_pass(clients, settings, dry_run=True)
        assert not settled.plan.has_changes, (fail_at, injector.failed, settled.plan)


def test_transient_errors_are_retried_within_the_pass(aws, reference):
    settings, clean, total = reference
    for fail_at in (1, total // 2, total):
        clients = fresh(aws, settings, None)
        injector = FaultInjector(clients, fail_at, code="ThrottlingException")
        result = run_pass(clients, settings, dry_run=False)
        injector.disarm()
        assert result.ok, (fail_at, result)
        assert live_state(clients, settings) == clean


def test_one_failing_cron_does_not_stop_the_others(aws, reference):
    settings, clean, _ = reference
    reset_moto(aws)
    clients = prepare(settings)  # own clients: the handler below stays on them
    events = clients.client("events")

    def refuse_alpha(params, **_kwargs):
        if params.get("Name") == "test-alpha":
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "no"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutRule")

    events.meta.events.register("before-parameter-build.events.PutRule", refuse_alpha)
    result = run_pass(clients, settings, dry_run=False)
    assert [(e.cron, e.resource, e.action) for e in result.apply_errors] == [
        ("alpha", "schedule", "create")]
    state = live_state(clients, settings)
    assert sorted(state["rules"]) == ["test-beta", "test-gamma"]
    assert sorted(state["registry"]) == ["beta", "gamma"]
    events.meta.events.unregister("before-parameter-build.events.PutRule", refuse_alpha)
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings) == clean


BEFORE = CRONS
AFTER = {  # with --scheduler scheduler: alpha edited, gamma removed, delta new
    "alpha": cron_yaml("cron(30 6 * * ? *)", "perl", env={"A": "2"}, timezone="Europe/Paris"),
    "beta": CRONS["beta"],
    "delta": cron_yaml("rate(1 hour)", "alpine"),
}


@pytest.mark.parametrize("crash", [False, True], ids=["aws-error", "crash"])
def test_a_failure_during_a_backend_switch_with_edits_and_deletes_converges(
        aws, settings, tmp_path, crash):
    rules_settings = settings.with_(repo=str(tmp_path))
    switched = rules_settings.with_(scheduler="scheduler")

    def at_before_state():
        clients = fresh(aws, rules_settings, tmp_path)
        write_crons(tmp_path, BEFORE)
        assert run_pass(clients, rules_settings, dry_run=False).ok
        write_crons(tmp_path, AFTER)
        return clients

    clients = at_before_state()
    clean_pass = run_pass(clients, switched, dry_run=False)
    assert clean_pass.ok, clean_pass
    clean = live_state(clients, switched)
    assert clean["rules"] == {} and sorted(clean["schedules"]) == ["alpha", "beta", "delta"]
    total = sum(clean_pass.api_calls.values())
    for fail_at in range(1, total + 1):
        clients = at_before_state()
        injector = FaultInjector(clients, fail_at, crash=crash)
        try:
            assert not run_pass(clients, switched, dry_run=False).ok
        except SimulatedCrash:
            assert crash
        injector.disarm()
        repaired = run_pass(clients, switched, dry_run=False)
        assert repaired.ok, (fail_at, injector.failed, repaired)
        assert live_state(clients, switched) == clean, (fail_at, injector.failed)
        assert len(inactive_revisions(clients)) == 1  # gamma's busybox definition only
        settled = run_pass(clients, switched, dry_run=True)
        assert not settled.plan.has_changes, (fail_at, injector.failed, settled.plan)


def test_a_failed_change_skips_exactly_the_changes_that_depend_on_it(aws, reference):
    """alpha and beta move to a new task definition whose registration fails: their registry
    updates wait for it, and the old definition's delete waits for them; gamma's edit and the
    schedules (which depend on no task definition) are applied."""
    settings, clean, _ = reference
    root = Path(settings.repo)
    reset_moto(aws)
    clients = prepare(settings)
    assert run_pass(clients, settings, dry_run=False).ok
    before = live_state(clients, settings)
    write_crons(root, {
        "alpha": cron_yaml("cron(0 6 * * ? *)", "python", env={"A": "1"}),
        "beta": cron_yaml("rate(5 minutes)", "python"),
        "gamma": cron_yaml("cron(*/10 * * * ? *)", "busybox", env={"G": "2"}),
    })
    ecs = clients.client("ecs")

    def refuse_python(params, **_kwargs):
        if params["containerDefinitions"][0]["image"] == "python":
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "ClientException", "Message": "no"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}},
                              "RegisterTaskDefinition")

    ecs.meta.events.register("before-parameter-build.ecs.RegisterTaskDefinition", refuse_python)
    try:
        result = run_pass(clients, settings, dry_run=False)
    finally:
        ecs.meta.events.unregister("before-parameter-build.ecs.RegisterTaskDefinition",
                                   refuse_python)
    python = next(c.cron for c in result.plan.pending
                  if c.resource == "task-definition" and c.action == "create")
    perl = next(c.cron for c in result.plan.pending
                if c.resource == "task-definition" and c.action == "delete")
    assert [e.change_id for e in result.apply_errors] == [f"{python}/task-definition/create"]
    assert [(s.change.id, s.after) for s in result.skipped] == [
        ("alpha/registry/update", f"{python}/task-definition/create"),
        ("beta/registry/update", f"{python}/task-definition/create"),
        (f"{perl}/task-definition/delete", f"{python}/task-definition/create")]
    assert sorted(c.id for c in result.applied) == [
        "alpha/schedule/update", "gamma/registry/update"]
    state = live_state(clients, settings)
    assert state["rules"]["test-alpha"]["expression"] == "cron(0 6 * * ? *)"
    assert state["registry"]["alpha"] == before["registry"]["alpha"]  # still on perl
    assert state["registry"]["beta"] == before["registry"]["beta"]
    assert state["registry"]["gamma"] != before["registry"]["gamma"]
    assert perl in state["task_definitions"]  # the old definition is still registered
    assert run_pass(clients, settings, dry_run=False).ok  # the next pass converges
    assert not run_pass(clients, settings, dry_run=True).plan.has_changes

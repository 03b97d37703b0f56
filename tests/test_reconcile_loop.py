"""The reconcile loop thread: passes on start and on trigger(), clean stop, the leader lease
(only one of two replicas reconciles; the other takes over when it stops), and a failing pass
that does not end the loop."""

from __future__ import annotations

import pytest

from reconciler.service.control.reconcile import run_pass
from reconciler.service.control.reconcile_loop import LeaderLease, ReconcileLoop
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons
from tests.support.waiting import wait_for


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    write_crons(tmp_path, {"alpha": cron_yaml()})
    return clients, settings.with_(repo=str(tmp_path))


def test_trigger_runs_a_pass_and_stop_joins(env, tmp_path):
    clients, settings = env
    loop = ReconcileLoop(clients, settings.with_(interval_s=3600), owner_id="one")
    loop.start()
    try:
        first = wait_for(lambda: loop.last_result, timeout=10, message="first pass")
        assert first.ok and "test-alpha" in live_state(clients, settings)["rules"]
        write_crons(tmp_path, {"alpha": cron_yaml(), "beta": cron_yaml("rate(1 hour)")})
        loop.trigger()
        wait_for(lambda: loop.passes >= 2, timeout=10, message="triggered pass")
        assert "test-beta" in live_state(clients, settings)["rules"]
    finally:
        assert loop.stop(timeout=10)
    assert loop.last_result.ok


def test_only_the_lease_holder_reconciles(env):
    clients, settings = env
    fast = settings.with_(interval_s=0.05)
    leader = ReconcileLoop(clients, fast, owner_id="replica-a", lease_s=30)
    leader.start()
    follower = None
    try:
        wait_for(lambda: leader.passes >= 1, timeout=10, message="leader pass")
        follower = ReconcileLoop(clients, fast, owner_id="replica-b", lease_s=30)
        follower.start()
        wait_for(lambda: follower.skipped >= 3 and leader.passes >= 3, timeout=10,
                 message="follower skipping while the leader reconciles")
        assert follower.passes == 0 and follower.last_result is None
        assert leader.stop(timeout=10)
        wait_for(lambda: follower.passes >= 1, timeout=10, message="takeover")
        assert follower.last_result.ok
    finally:
        leader.stop(timeout=10)
        if follower is not None:
            assert follower.stop(timeout=10)


def test_expired_lease_is_taken_over(env):
    clients, settings = env
    old = LeaderLease(clients, settings, "old", duration_s=10)
    new = LeaderLease(clients, settings, "new", duration_s=10)
    assert old.acquire(now=1000.0)
    assert not new.acquire(now=1005.0)
    assert old.acquire(now=1005.0)          # renewal by the holder
    assert not new.acquire(now=1014.0)
    assert new.acquire(now=1016.0)          # the holder stopped renewing
    assert not old.renew(now=1016.0) and not old.held  # learnt at its next renewal


def test_a_failing_pass_is_logged_and_the_loop_goes_on(env):
    clients, settings = env
    calls = []

    def flaky(clients, settings, *, dry_run, fence, **policy):
        calls.append(dry_run)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return run_pass(clients, settings, dry_run=dry_run, fence=fence, **policy)

    loop = ReconcileLoop(clients, settings.with_(interval_s=3600), owner_id="one",
                         pass_fn=flaky)
    loop.start()
    try:
        wait_for(lambda: calls, timeout=10, message="first (failing) pass")
        loop.trigger()
        result = wait_for(lambda: loop.last_result, timeout=10, message="second pass")
        assert result.ok and calls == [False, False]
    finally:
        assert loop.stop(timeout=10)

"""Fencing of the reconcile leader: the lease's generation, registry writes that DynamoDB
refuses to a replica that lost the lease, a stalled leader that writes nothing once it resumes,
renewals during and between passes, failover after a leader is killed, and `cronctl reconcile`
next to a running daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from reconciler.adapters import registry, rules
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.lease import LeaderLease, LeaseLost
from reconciler.cli import main
from reconciler.errors import ConfigError
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import run_pass
from reconciler.service.control.reconcile_loop import ReconcileLoop
from reconciler.settings import from_environment
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons
from tests.support.waiting import wait_for


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    write_crons(tmp_path, {"alpha": cron_yaml()})
    return clients, settings.with_(repo=str(tmp_path))


def _leader_item(clients, settings) -> dict:
    item = clients.client("dynamodb").get_item(
        TableName=settings.leases_table, Key={"lease_id": {"S": "leader"}},
        ConsistentRead=True).get("Item", {})
    return {"owner": item.get("owner", {}).get("S"),
            "generation": int(item.get("generation", {}).get("N", "0")),
            "expires_at": float(item.get("expires_at", {}).get("N", "0"))}


def _stop_all(*loops) -> None:
    for loop in loops:
        if loop is not None:
            assert loop.stop(timeout=15)


def test_generation_grows_on_takeover_and_not_on_renewal(env):
    clients, settings = env
    a = LeaderLease(clients, settings, "a", duration_s=10)
    b = LeaderLease(clients, settings, "b", duration_s=10)
    assert a.acquire(now=1000.0) and a.generation == 1
    assert a.acquire(now=1003.0) and a.renew(now=1004.0)          # renewals keep it
    assert _leader_item(clients, settings) == {"owner": "a", "generation": 1,
                                               "expires_at": 1014.0}
    assert not b.acquire(now=1010.0) and b.holder.owner == "a"    # live: refused
    assert b.acquire(now=1015.0) and b.generation == 2            # expired: taken over
    assert _leader_item(clients, settings)["generation"] == 2
    assert not a.renew(now=1015.0) and not a.held                 # a learns it lost it
    b.release()
    assert _leader_item(clients, settings) == {"owner": None, "generation": 2,
                                               "expires_at": 0.0}
    assert a.acquire(now=1016.0) and a.generation == 3            # released: taken at once
    assert _leader_item(clients, settings)["owner"] == "a"


def test_two_loops_started_together_only_one_reconciles(env):
    clients, settings = env
    fast = settings.with_(interval_s=0.05)
    one = ReconcileLoop(clients, fast, owner_id="replica-1", lease_s=30)
    two = ReconcileLoop(AwsClients(fast), fast, owner_id="replica-2", lease_s=30)
    try:
        one.start()
        two.start()
        wait_for(lambda: any(x.passes >= 3 and y.skipped >= 3 for x, y in ((one, two), (two, one))),
                 timeout=20, message="one replica reconciling, the other skipping")
        assert sorted([one.passes == 0, two.passes == 0]) == [False, True]
        assert _leader_item(clients, settings)["generation"] == 1
    finally:
        _stop_all(one, two)


def test_the_leader_renews_between_passes_so_no_follower_takes_over(env):
    clients, settings = env
    hourly = settings.with_(interval_s=3600)
    lease_s = 1.2
    leader = ReconcileLoop(clients, hourly, owner_id="leader", lease_s=lease_s)
    follower = ReconcileLoop(AwsClients(hourly), hourly, owner_id="follower", lease_s=lease_s)
    try:
        leader.start()
        wait_for(lambda: leader.passes >= 1, timeout=20, message="the leader's first pass")
        follower.start()
        first = _leader_item(clients, settings)
        # Three lease periods with no pass (interval one hour): renewals alone keep it.
        wait_for(lambda: _leader_item(clients, settings)["expires_at"]
                 >= first["expires_at"] + 3 * lease_s, timeout=20,
                 message="renewals over three lease periods")
        assert _leader_item(clients, settings)["owner"] == "leader"
        assert _leader_item(clients, settings)["generation"] == first["generation"] == 1
        assert leader.passes == 1 and follower.passes == 0 and not follower.lease.held
    finally:
        _stop_all(follower, leader)


class _PauseInApply:
    """Replaces ``rules.put``: the first call for ``cron`` blocks (``paused`` set) until
    ``resume``; every other call goes straight through."""

    def __init__(self, monkeypatch, cron: str) -> None:
        self.cron = cron
        self.paused = threading.Event()
        self.resume = threading.Event()
        self._original = rules.put
        monkeypatch.setattr(rules, "put", self)

    def __call__(self, clients, namespace, cron, wanted, existing=False, **kwargs):
        if cron == self.cron and not self.paused.is_set():
            self.paused.set()
            assert self.resume.wait(30), "the test never resumed the paused pass"
        return self._original(clients, namespace, cron, wanted, existing=existing, **kwargs)


def _freeze_dynamodb(clients: AwsClients, paused: threading.Event, resume: threading.Event):
    """From the moment ``paused`` is set until ``resume``, every DynamoDB call made on these
    clients (the lease heartbeat's) blocks: the whole replica is stalled."""

    def hook(**_kwargs):
        if paused.is_set() and not resume.is_set():
            resume.wait(30)

    clients.client("dynamodb").meta.events.register("before-call.dynamodb.*", hook)


def test_a_long_pass_keeps_its_lease_renewed(env, monkeypatch, tmp_path):
    clients, settings = env
    write_crons(tmp_path, {"alpha": cron_yaml(), "beta": cron_yaml("rate(1 hour)")})
    hourly = settings.with_(interval_s=3600)
    lease_s = 1.2
    pause = _PauseInApply(monkeypatch, "beta")
    leader = ReconcileLoop(clients, hourly, owner_id="leader", lease_s=lease_s)
    follower = None
    try:
        leader.start()
        assert pause.paused.wait(20), "the leader's pass never reached beta"
        follower = ReconcileLoop(AwsClients(hourly), hourly, owner_id="follower",
                                 lease_s=lease_s)
        follower.start()
        during = _leader_item(clients, settings)
        wait_for(lambda: _leader_item(clients, settings)["expires_at"]
                 >= during["expires_at"] + 3 * lease_s, timeout=20,
                 message="renewals while the pass is held up for three lease periods")
        pause.resume.set()
        result = wait_for(lambda: leader.last_result, timeout=20, message="the long pass")
        assert result.ok and not result.lease_lost
        assert sorted(live_state(clients, settings)["rules"]) == ["test-alpha", "test-beta"]
        assert _leader_item(clients, settings)["generation"] == 1
        assert follower.passes == 0 and not follower.lease.held
    finally:
        pause.resume.set()
        _stop_all(follower, leader)


def test_a_stalled_leader_that_lost_the_lease_writes_nothing_more(settings, monkeypatch,
                                                                   tmp_path):
    """A reads the old files and stalls in the middle of its apply (its heartbeat too); its
    lease expires, B takes over (generation + 1) and applies the new files; A resumes: its
    pass ends with LeaseLost and the rules, targets and registry stay exactly B's."""
    clients_a = prepare(settings)
    clients_b = AwsClients(settings)
    old = write_crons(tmp_path / "old", {"alpha": cron_yaml(),
                                         "beta": cron_yaml("cron(0 5 * * ? *)")})
    new = write_crons(tmp_path / "new", {"alpha": cron_yaml(),
                                         "beta": cron_yaml("cron(0 7 * * ? *)"),
                                         "gamma": cron_yaml("rate(1 hour)")})
    settings_a = settings.with_(repo=str(old), interval_s=3600)
    settings_b = settings.with_(repo=str(new), interval_s=3600)
    lease_s = 1.5
    pause = _PauseInApply(monkeypatch, "beta")
    _freeze_dynamodb(clients_a, pause.paused, pause.resume)
    a = ReconcileLoop(clients_a, settings_a, owner_id="replica-a", lease_s=lease_s)
    b = None
    try:
        a.start()
        assert pause.paused.wait(20), "A's pass never reached beta"
        assert sorted(live_state(clients_b, settings)["rules"]) == ["test-alpha"]
        b = ReconcileLoop(clients_b, settings_b, owner_id="replica-b", lease_s=lease_s)
        b.start()
        result_b = wait_for(lambda: b.last_result, timeout=20,
                            message="B taking the expired lease over and applying")
        assert result_b.ok, result_b
        taken = _leader_item(clients_b, settings)
        assert (taken["owner"], taken["generation"]) == ("replica-b", 2)
        b_state = live_state(clients_b, settings)

        pause.resume.set()                                   # A wakes up
        result_a = wait_for(lambda: a.lost and a.last_result, timeout=20,
                            message="A's pass to end")
        assert result_a.lease_lost
        assert result_a.errors[0].startswith("this replica lost the leader lease: ")
        assert "LeaseLost" not in result_a.errors[0]
        assert not a.lease.held

        state = live_state(clients_b, settings)
        assert state == b_state
        assert sorted(state["rules"]) == ["test-alpha", "test-beta", "test-gamma"]
        assert state["rules"]["test-beta"]["expression"] == "cron(0 7 * * ? *)"
        assert [t["Id"] for t in state["rules"]["test-beta"]["targets"]] == ["cronctl-dispatch"]
        assert sorted(state["registry"]) == ["alpha", "beta", "gamma"]
        assert json.loads(state["registry"]["beta"]["spec"])["schedule"] == "cron(0 7 * * ? *)"
        assert not run_pass(clients_b, settings_b, dry_run=True).plan.has_changes
        assert _leader_item(clients_b, settings)["owner"] == "replica-b"
    finally:
        pause.resume.set()
        _stop_all(a, b)


def test_a_registry_write_with_a_stale_generation_is_refused_by_dynamodb(env):
    clients, settings = env
    a = LeaderLease(clients, settings, "replica-a", duration_s=30)
    assert a.acquire()
    fence_a = a.fence()
    assert run_pass(clients, settings, dry_run=False, fence=fence_a).ok
    written = registry.scan(clients, settings)["alpha"]

    b = LeaderLease(clients, settings, "replica-b", duration_s=30)
    assert b.acquire(now=time.time() + 60)                 # A's lease seen as expired
    assert b.generation == fence_a.generation + 1
    fence_a.check()                     # A's local view is still fresh: it cannot tell...
    changed = replace(written, file="crons.d/elsewhere.yaml")
    for target in (clients, fence_a.guard(clients)):       # ...but DynamoDB refuses
        with pytest.raises(LeaseLost, match="refused by DynamoDB"):
            registry.put(target, settings, changed, fence=fence_a)
        with pytest.raises(LeaseLost, match="refused by DynamoDB"):
            registry.delete(target, settings, "alpha", fence=fence_a)
    assert registry.scan(clients, settings) == {"alpha": written}

    registry.put(clients, settings, changed, fence=b.fence())
    assert registry.scan(clients, settings)["alpha"].file == "crons.d/elsewhere.yaml"


def test_a_lost_lease_stops_control_plane_writes_before_they_are_sent(env):
    clients, settings = env
    clock = [1000.0]
    a = LeaderLease(clients, settings, "replica-a", duration_s=30, mono=lambda: clock[0])
    assert a.acquire()
    fence_a = a.fence()
    b = LeaderLease(clients, settings, "replica-b", duration_s=30)
    assert b.acquire(now=time.time() + 60)
    clock[0] += 25.0  # A's clock jumps past its certainty: the fence must renew, and cannot
    result = run_pass(clients, settings, dry_run=False, fence=fence_a)
    assert result.lease_lost and result.applied == ()
    assert live_state(clients, settings)["rules"] == {}
    assert live_state(clients, settings)["task_definitions"] == {}


CRON = """\
schedule: "cron(0 5 * * ? *)"
container:
  image: busybox
  arguments: ["sh", "-c", "echo tick"]
"""


def test_failover_after_the_leader_process_is_killed(settings, tmp_path):
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "tick.yaml").write_text(CRON)
    settings = settings.with_(cluster="test", repo=str(tmp_path), interval_s=3600)
    clients = AwsClients(settings)
    bootstrap(clients, settings)
    lease_s = 2.0
    env = {**os.environ, "CRONCTL_SQS_WAIT_S": "1", "CRONCTL_LEASE_S": str(lease_s)}
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", "--repo", str(tmp_path),
         "--namespace", settings.namespace, "--cluster", "test", "--listen", "127.0.0.1:0",
         "--interval", "3600"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    follower = None
    try:
        wait_for(lambda: clients.client("events").list_rules(NamePrefix="test-tick")["Rules"],
                 timeout=30, message="the daemon's first pass")
        leader = _leader_item(clients, settings)
        assert leader["owner"].startswith("serve@") and leader["generation"] == 1
        follower = ReconcileLoop(clients, settings, owner_id="follower", lease_s=lease_s)
        follower.start()
        wait_for(lambda: follower.skipped >= 1, timeout=10, message="the follower skipping")
        process.send_signal(signal.SIGKILL)          # no release: the lease must expire
        killed_at = time.monotonic()
        process.wait(timeout=10)
        wait_for(lambda: follower.lease.held, timeout=4 * lease_s, message="the takeover")
        took = time.monotonic() - killed_at
        assert took <= lease_s + 1.0, f"takeover {took:.2f}s after the kill"
        result = wait_for(lambda: follower.last_result, timeout=20, message="its pass")
        assert result.ok
        assert _leader_item(clients, settings)["owner"] == "follower"
        assert _leader_item(clients, settings)["generation"] == 2
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        _stop_all(follower)


def test_cli_reconcile_is_refused_while_a_daemon_holds_the_lease(env, tmp_path, capsys):
    clients, settings = env
    daemon = ReconcileLoop(clients, settings.with_(interval_s=3600), owner_id="serve@host:1/ab")
    daemon.start()
    try:
        wait_for(lambda: daemon.passes >= 1, timeout=20, message="the daemon's pass")
        write_crons(tmp_path, {"alpha": cron_yaml(), "beta": cron_yaml("rate(1 hour)")})
        before = live_state(clients, settings)
        args = ["reconcile", "--repo", str(tmp_path), "--namespace", "test"]
        capsys.readouterr()
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert err.startswith("cronctl reconcile: the leader lease of namespace 'test' is held "
                              "by serve@host:1/ab (generation 1) until 20")
        assert "SIGHUP" in err and "POST /reconcile" in err
        assert live_state(clients, settings) == before
        assert main([*args, "--dry-run", "--detailed-exitcode"]) == 2  # needs no lease
    finally:
        _stop_all(daemon)
    # Released by the daemon's stop: the command takes it for its pass and releases it.
    assert main(args) == 0
    assert sorted(live_state(clients, settings)["rules"]) == ["test-alpha", "test-beta"]
    assert _leader_item(clients, settings) == {"owner": None, "generation": 2,
                                               "expires_at": 0.0}
    # An expired lease (a holder that died) is taken over too.
    LeaderLease(clients, settings, "dead", duration_s=5).acquire(now=time.time() - 60)
    assert main(args) == 0
    assert _leader_item(clients, settings)["generation"] == 4


def test_lease_duration_setting_is_bounded_and_independent_of_the_interval(env, monkeypatch):
    clients, settings = env
    assert from_environment().lease_s == 30.0
    monkeypatch.setenv("CRONCTL_LEASE_S", "12.5")
    assert from_environment().lease_s == 12.5
    for bad in ("0.5", "46", "soon"):
        monkeypatch.setenv("CRONCTL_LEASE_S", bad)
        with pytest.raises(ConfigError, match="CRONCTL_LEASE_S must be between 1 and 45"):
            from_environment()
    loop = ReconcileLoop(clients, settings.with_(interval_s=600))
    assert loop.lease.duration_s == 30.0

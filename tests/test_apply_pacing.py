"""The paced, concurrent apply: token buckets (pure arithmetic, then the thread-safe bucket),
the namespace's ``--api-rate`` settings, an apply against the moto server that never exceeds
a tight bucket, dependency order kept while changes run at once, a reached quota that stops
only the creates it concerns, and the progress callback's ETA."""

from __future__ import annotations

import io
import json
import re
import threading
import time

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from reconciler.adapters.pacing import Pacer, PacingStopped, TokenBucket, paced
from reconciler.core import quotas
from reconciler.core.quotas import Bucket, take
from reconciler.errors import ConfigError
from reconciler.service.control import apply as apply_module
from reconciler.service.control.apply import PROGRESS
from reconciler.service.control.reconcile import run_pass
from reconciler.settings import Settings, from_environment
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons

# --- the bucket's arithmetic (pure) ---------------------------------------------------------

B = Bucket("b", burst=3, per_s=2.0)


@pytest.mark.parametrize("calls, waits", [
    # (time of each call), the wait each gets
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),                       # the burst
    ([0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 1.0]),   # then one per 1/rate s
    ([0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]),             # 2 tokens back after 1 s
    ([0.0, 0.0, 0.0, 0.0, 10.0], [0.0, 0.0, 0.0, 0.5, 0.0]),  # refilled, never past burst
    ([0.0] * 3 + [10.0] * 4, [0.0] * 3 + [0.0, 0.0, 0.0, 0.5]),
], ids=["burst", "past-burst", "refill", "refill-capped", "capped-at-burst"])
def test_take_gives_each_call_its_wait(calls, waits):
    state = quotas.full(B, 0.0)
    got = []
    for now in calls:
        state, wait = take(B, state, now)
        got.append(round(wait, 6))
    assert got == waits


def test_any_window_holds_at_most_burst_plus_rate_times_its_length():
    state, start_times = quotas.full(B, 0.0), []
    for index in range(40):  # callers arriving every 0.1 s, each starting after its wait
        now = index * 0.1
        state, wait = take(B, state, now)
        start_times.append(now + wait)
    for i, begin in enumerate(start_times):
        for width in (0.25, 0.5, 1.0, 3.0):
            inside = sum(1 for t in start_times[i:] if t < begin + width - 1e-9)
            assert inside <= B.burst + B.per_s * width


@pytest.mark.parametrize("calls, tokens, expected", [
    ({}, None, 0.0),
    ({"eventbridge.PutRule": 50}, None, 0.0),                        # within the burst
    ({"eventbridge.PutRule": 100, "eventbridge.PutTargets": 100}, None, 3.0),  # one bucket
    ({"eventbridge.PutRule": 100}, {"events": 0.0}, 2.0),            # an empty bucket
    ({"ecs.RegisterTaskDefinition": 50, "eventbridge.PutRule": 60}, None, 30.0),  # slowest
    ({"dynamodb.PutItem": 10_000}, None, 0.0),                       # not paced
])
def test_eta_is_the_slowest_bucket(calls, tokens, expected):
    assert quotas.eta_s(calls, quotas.DEFAULT_BUCKETS, tokens) == pytest.approx(expected)


def test_events_reads_and_writes_share_one_bucket_and_old_names_still_read():
    assert quotas.bucket_of("eventbridge", "ListRules") is quotas.bucket_of("events", "PutRule")
    assert quotas.DEFAULT_BUCKETS["events-read"].per_s == 50.0
    assert quotas.bucket_of("ecs", "RegisterTaskDefinition").burst == 20
    assert quotas.bucket_of("dynamodb", "PutItem") is None


# --- the thread-safe bucket -------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_acquire_refuses_a_wait_past_its_deadline_and_takes_no_token():
    clock = Clock()
    bucket = TokenBucket(Bucket("b", 1, 1.0), clock)
    assert bucket.acquire(deadline=clock.now)               # the burst
    assert not bucket.acquire(deadline=clock.now + 0.5)     # would wait 1 s
    assert bucket.tokens() == 0.0                           # nothing was promised
    clock.now += 1.0
    assert bucket.acquire(deadline=clock.now)


def test_acquire_returns_false_as_soon_as_stop_is_set():
    bucket = TokenBucket(Bucket("b", 1, 0.001))  # the next token is 1,000 s away
    assert bucket.acquire()
    stop = threading.Event()
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(bucket.acquire(stop)),
                              name="cronctl-test-waiter")
    waiter.start()
    stop.set()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and answers == [False]
    assert not bucket.acquire(stop)  # stopped: not even tried


def test_a_paced_call_of_a_stopping_apply_is_not_made(settings):
    from reconciler.adapters.aws import AwsClients

    clients = AwsClients(settings)
    events = clients.client("events")
    stop = threading.Event()
    stop.set()
    with paced(Pacer(quotas.configured()), stop), pytest.raises(PacingStopped):
        events.list_rules(NamePrefix="nothing-")
    assert "eventbridge.ListRules" not in clients.counter.snapshot()
    assert events.list_rules(NamePrefix="nothing-")["Rules"] == []  # unpaced outside


# --- the namespace's API rates ----------------------------------------------------------------

@pytest.mark.parametrize("given, recorded", [
    (["events=100"], ("events=100/100",)),
    (["events-write=20/5"], ("events=20/5",)),                      # the old name
    (["ecs-taskdef-modify=0.5", "events=60/80"], ("ecs-taskdef-modify=0.5/20",
                                                   "events=60/80")),
    (["events=10", "events=30"], ("events=30/50",)),                # the last wins
])
def test_api_rates_are_recorded_canonically(given, recorded):
    settings = Settings(api_rates=given)
    assert settings.api_rates == recorded
    record = settings.namespace_settings.to_record()
    assert type(settings.namespace_settings).from_record(record).api_rates == recorded
    buckets = quotas.configured(settings.api_rates)
    name, _, value = recorded[-1].partition("=")
    assert buckets[name].per_s == float(value.split("/")[0])


@pytest.mark.parametrize("given, message", [
    ("nope=1", "unknown API rate 'nope': one of events, "),
    ("events=0", "events: the rate must be a positive number of calls per second, got '0'"),
    ("events=fast", "events: the rate must be a positive number"),
    ("events=5/0", "events: the burst must be a whole number of calls, 1 or more, got '0'"),
    ("events", "expected NAME=RATE or NAME=RATE/BURST, got 'events'"),
])
def test_a_wrong_api_rate_is_refused_with_its_reason(monkeypatch, given, message):
    with pytest.raises(ConfigError) as raised:
        Settings(api_rates=[given])
    assert str(raised.value).startswith("--api-rate: ") and message in str(raised.value)
    monkeypatch.setenv("CRONCTL_API_RATES", f"events=10,{given}")
    with pytest.raises(ConfigError, match=r"^CRONCTL_API_RATES: "):
        from_environment()


# --- the apply against the moto server --------------------------------------------------------

class CallTimes:
    """When each call of ``operations`` started (after its pacing) and how many were in flight
    at once, from botocore hooks registered after the clients' own."""

    def __init__(self, clients, service: str, operations: tuple[str, ...]) -> None:
        self.starts: list[tuple[str, float, dict]] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        self._operations = operations
        events = clients.client(service).meta.events
        events.register(f"before-call.{service}.*", self._before)
        events.register(f"after-call.{service}.*", self._after)

    def _before(self, event_name: str, params: dict, **_kwargs) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if operation in self._operations:
                self.starts.append((operation, time.monotonic(), params.get("body") or {}))

    def _after(self, **_kwargs) -> None:
        with self._lock:
            self.in_flight -= 1


def _crons(count: int, image: str = "busybox") -> dict[str, str]:
    return {f"c{index:02d}": cron_yaml(f"cron({index} 5 * * ? *)", image)
            for index in range(count)}


def test_the_apply_never_exceeds_a_tight_bucket(settings, tmp_path):
    rate, burst = 20.0, 5
    settings = settings.with_(repo=str(tmp_path), api_rates=(f"events={rate:g}/{burst}",))
    clients = prepare(settings)
    write_crons(tmp_path, _crons(10))  # 10 creates: 10 PutRule + 10 PutTargets
    times = CallTimes(clients, "events", ("PutRule", "PutTargets", "TagResource"))
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    assert sorted(live_state(clients, settings)["rules"]) == [f"test-c{i:02d}"
                                                            for i in range(10)]
    starts = sorted(t for _, t, _ in times.starts)
    assert len(starts) == 20
    tolerance = 1  # one call's worth of clock granularity
    for i, begin in enumerate(starts):
        for width in (0.1, 0.25, 0.5):
            inside = sum(1 for t in starts[i:] if t < begin + width)
            assert inside <= burst + rate * width + tolerance, (i, width, inside)
    assert starts[-1] - starts[0] >= (20 - burst) / rate * 0.9  # it was paced at all


def test_a_full_checks_reads_draw_from_the_same_buckets(settings, tmp_path):
    """``--full-check`` reads every rule one by one: those reads are paced like the apply's
    writes (on AWS, 10,000 rules are 10,000 reads of EventBridge's 50 a second)."""
    rate, burst = 20.0, 5
    settings = settings.with_(repo=str(tmp_path), api_rates=(f"events={rate:g}/{burst}",))
    clients = prepare(settings)
    write_crons(tmp_path, _crons(12))
    assert run_pass(clients, settings, dry_run=False).ok
    reads = ("ListRules", "ListTargetsByRule", "ListTagsForResource", "DescribeRule")
    times = CallTimes(clients, "events", reads)
    result = run_pass(clients, settings, dry_run=False, full_check=True)
    assert result.ok and not result.plan.has_changes, result
    starts = sorted(t for _, t, _ in times.starts)
    assert len(starts) >= 12  # a read per rule at least: 7 past the burst
    tolerance = 1
    for i, begin in enumerate(starts):
        for width in (0.1, 0.25, 0.5):
            inside = sum(1 for t in starts[i:] if t < begin + width)
            assert inside <= burst + rate * width + tolerance, (i, width, inside)
    assert starts[-1] - starts[0] >= (len(starts) - burst) / rate * 0.9


def test_changes_run_at_once_but_never_before_what_they_depend_on(settings, tmp_path):
    settings = settings.with_(repo=str(tmp_path))
    clients = prepare(settings)
    crons = {**_crons(6, "busybox"), **{f"p{index}": cron_yaml("rate(1 hour)", "perl")
                                       for index in range(6)}}
    write_crons(tmp_path, crons)
    order: list[tuple[str, str]] = []  # (what, cron) in the order AWS received them
    lock = threading.Lock()

    def note(event_name: str, params: dict, **_kwargs) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with lock:
            if operation == "PutTargets":
                order.append(("targets", params["Rule"].removeprefix("test-")))
            elif operation == "RegisterTaskDefinition":
                order.append(("taskdef", params["family"]))
            elif operation in ("TransactWriteItems", "PutItem"):
                items = [i.get("Put", {}).get("Item") for i in params.get("TransactItems", [])] \
                    or [params.get("Item")]
                for item in items:
                    name = (item or {}).get("name", {}).get("S", "#")
                    if not name.startswith("#"):
                        order.append(("registry", name))
                        family = re.search(r"test-td-[0-9a-f]+", json.dumps(item))
                        order.append(("records", family.group(0) if family else ""))

    for service in ("events", "ecs", "dynamodb"):
        clients.client(service).meta.events.register(f"before-parameter-build.{service}.*",
                                                     note)
    times = CallTimes(clients, "events", ("PutRule", "PutTargets"))
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    assert sorted(live_state(clients, settings)["registry"]) == sorted(crons)
    assert times.most_in_flight > 1  # changes did run at once
    registry_at = {cron: i for i, (what, cron) in enumerate(order) if what == "registry"}
    targets_at = {cron: i for i, (what, cron) in enumerate(order) if what == "targets"}
    assert set(registry_at) == set(targets_at) == set(crons)
    for cron in crons:  # a registry item is written once its schedule is in place
        assert targets_at[cron] < registry_at[cron], (cron, order)
    registered = {family: i for i, (what, family) in enumerate(order) if what == "taskdef"}
    assert len(registered) == 2  # busybox, perl
    for i, (what, family) in enumerate(order):
        if what == "records":  # a registry item is written once its task definition is
            assert family in registered and registered[family] < i, (family, order)


def test_a_failed_schedule_skips_its_registry_item_while_the_others_apply(settings, tmp_path):
    settings = settings.with_(repo=str(tmp_path))
    clients = prepare(settings)
    write_crons(tmp_path, _crons(8))

    def refuse_c03(params, **_kwargs):
        if params.get("Name") == "test-c03":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "no"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutRule")

    clients.client("events").meta.events.register("before-parameter-build.events.PutRule",
                                                  refuse_c03)
    result = run_pass(clients, settings, dry_run=False)
    assert [(e.cron, e.resource, e.action) for e in result.apply_errors] == [
        ("c03", "schedule", "create")]
    assert [(s.change.id, s.after) for s in result.skipped] == [
        ("c03/registry/create", "c03/schedule/create")]
    state = live_state(clients, settings)
    assert sorted(state["registry"]) == [f"c{i:02d}" for i in range(8) if i != 3]
    assert "test-c03" not in state["rules"]


# --- a reached quota --------------------------------------------------------------------------

EVENTS_QUOTA_MESSAGE = "The requested resource exceeds the maximum number allowed."


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data


def _rules_quota_answer(request) -> AWSResponse:
    """EventBridge's answer when the bus's rules quota is reached (AWS JSON 1.1, HTTP 400)."""
    body = json.dumps({"__type": "LimitExceededException", "message": EVENTS_QUOTA_MESSAGE})
    return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1",
                                          "x-amzn-RequestId": "0c9e2c1e-quota"},
                       _Body(body.encode()))


def test_a_reached_rules_quota_stops_only_the_rule_creates(settings, tmp_path):
    settings = settings.with_(repo=str(tmp_path))
    clients = prepare(settings)
    write_crons(tmp_path, {"keep": cron_yaml("cron(0 5 * * ? *)"),
                           "gone": cron_yaml("cron(0 6 * * ? *)")})
    assert run_pass(clients, settings, dry_run=False).ok
    new = {f"n{index:02d}": cron_yaml(f"cron({index} 7 * * ? *)") for index in range(12)}
    write_crons(tmp_path, {"keep": cron_yaml("cron(30 5 * * ? *)"), **new})  # edit, delete
    existing = {"test-keep", "test-gone"}
    refused: list[str] = []
    lock = threading.Lock()

    def rules_quota_reached(request, **_kwargs):
        name = json.loads(request.body or b"{}").get("Name")
        if name not in existing:  # a new rule: the bus is full
            with lock:
                refused.append(name)
            return _rules_quota_answer(request)
        return None

    clients.client("events").meta.events.register("before-send.events.PutRule",
                                                  rules_quota_reached)
    result = run_pass(clients, settings, dry_run=False)

    assert not result.ok
    failed = {e.cron for e in result.apply_errors}
    assert failed and failed <= set(new)
    assert all(e.resource == "schedule" and e.action == "create"
               and "'Number of rules'" in e.message for e in result.apply_errors)
    assert len(refused) == len(failed) < len(new)  # the first refusals stopped the rest
    stopped = [s for s in result.skipped if s.reason]
    assert {s.change.cron for s in stopped} == set(new) - failed
    assert all(s.change.id.endswith("/schedule/create") for s in stopped)
    assert {s.reason for s in stopped} == {
        "the event bus's rules quota (300 by default, 100 in some Regions) is reached: "
        "request an increase in Service Quotas (service Amazon EventBridge, quota 'Number "
        "of rules'), or use the scheduler backend (--scheduler scheduler)"}
    assert {s.change.cron for s in result.skipped if not s.reason} == set(new)  # registry
    state = live_state(clients, settings)
    assert sorted(state["rules"]) == ["test-keep"]              # gone deleted, none created
    assert state["rules"]["test-keep"]["expression"] == "cron(30 5 * * ? *)"  # updated
    assert sorted(state["registry"]) == ["keep"]

    from reconciler.core.plan.render import render_text

    text = render_text(result.plan, result.apply_errors, result.errors, result.skipped)
    assert f"Skipped: {stopped[0].change.id}: not tried: the event bus's rules quota" in text


# --- progress and ETA -------------------------------------------------------------------------

def test_progress_reports_an_eta_from_the_paced_rates(settings, tmp_path):
    settings = settings.with_(repo=str(tmp_path), api_rates=("events=10/1",))
    clients = prepare(settings)
    write_crons(tmp_path, _crons(6))
    reports: list[tuple[int, int, float | None]] = []
    token = PROGRESS.set(lambda done, total, eta_s=None: reports.append((done, total, eta_s)))
    try:
        result = run_pass(clients, settings, dry_run=False)
    finally:
        PROGRESS.reset(token)
    assert result.ok
    total = len(result.plan.pending)
    assert [(d, t) for d, t, _ in reports] == [(n, total) for n in range(1, total + 1)]
    assert all(eta is not None and eta >= 0 for *_, eta in reports)
    assert reports[-1][2] == 0.0
    # the first report: at least 10 of the 12 PutRule/PutTargets left, at most 1 token in
    # the bucket: 0.9 s at 10 calls per second, whatever the pace so far
    assert reports[0][2] >= (10 - 1) / 10


def test_a_large_apply_off_a_terminal_logs_a_line_per_tenth(settings, tmp_path, monkeypatch):
    from structlog.testing import capture_logs

    monkeypatch.setattr(apply_module, "LOG_PROGRESS_FROM", 4)
    settings = settings.with_(repo=str(tmp_path))
    clients = prepare(settings)
    write_crons(tmp_path, _crons(5))
    with capture_logs() as logs:
        result = run_pass(clients, settings, dry_run=False)
    assert result.ok
    lines = [entry for entry in logs if entry.get("event") == "apply progress"]
    total = len(result.plan.pending)
    assert 1 < len(lines) <= 11 and lines[-1]["done"] == total == lines[-1]["total"]
    assert [line["done"] for line in lines] == sorted(line["done"] for line in lines)


def test_the_terminal_shows_the_eta():
    from reconciler.commands.reconcile import ApplyProgress

    stream = io.StringIO()
    progress = ApplyProgress(stream=stream, force_terminal=True, width=120)
    with progress:
        progress.report(1, 4, eta_s=125.0)
        progress.progress.refresh()
        assert "ETA 0:02:05" in stream.getvalue()
        progress.report(4, 4, eta_s=0.0)
    assert "4/4" in stream.getvalue()


def test_a_call_that_waited_for_its_token_checks_the_fence_again(settings):
    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.lease import LeaseLost

    clients = AwsClients(settings)
    events = clients.client("events")
    lost = threading.Event()

    def check() -> None:
        if lost.is_set():
            raise LeaseLost("the lease was lost during the wait")

    lost.set()
    roomy = Pacer({"events": Bucket("events", 100, 100.0)})
    with paced(roomy, threading.Event(), check):
        events.list_rules(NamePrefix="nothing-")  # no wait: the fence checked before holds
    tight = Pacer({"events": Bucket("events", 1, 100.0)})  # 10 ms between tokens
    with paced(tight, threading.Event(), check):
        tight.acquire("eventbridge.ListRules")  # the bucket is empty now
        with pytest.raises(LeaseLost):
            events.list_rules(NamePrefix="nothing-")
    assert clients.counter.snapshot()["eventbridge.ListRules"] == 1  # the second not made


def test_bootstrap_records_the_api_rates_and_a_contradicting_flag_is_refused(
        settings, tmp_path, capsys):
    from reconciler.cli import main

    write_crons(tmp_path, _crons(2))
    assert main(["bootstrap", "--namespace", "test", "--api-rate", "events=100",
                 "--api-rate", "ecs-taskdef-modify=2/30"]) == 0
    out = capsys.readouterr().out
    assert "  api_rates: ecs-taskdef-modify=2/30,events=100/100" in out.splitlines(), out
    repo = ["--repo", str(tmp_path), "--namespace", "test", "--dry-run"]
    assert main(["reconcile", *repo, "--api-rate", "events=100/100",
                 "--api-rate", "ecs-taskdef-modify=2/30"]) == 0  # the recorded values
    capsys.readouterr()
    assert main(["reconcile", *repo, "--api-rate", "events=50"]) == 1
    err = capsys.readouterr().err
    assert "--api-rate events=50/50" in err and "cronctl bootstrap" in err, err


def test_help_names_the_api_rate_flag_its_variable_and_the_bucket_names(capsys):
    from reconciler.cli import main

    with pytest.raises(SystemExit):
        main(["reconcile", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    after = text[text.index("--api-rate NAME=RATE[/BURST]"):]
    assert "env CRONCTL_API_RATES; default AWS's default quotas" in after
    assert "events, scheduler.CreateSchedule" in after and "ecs-taskdef-modify" in after

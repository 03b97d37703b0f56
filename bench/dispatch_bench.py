"""``dispatch`` and ``dispatch.burst``: deliveries through the daemon's real HTTP endpoint.

The namespace is bootstrapped and the crons reconciled (concurrency ``forbid``, the
default). The daemon's HTTP endpoint (``DaemonHttpServer``, as ``build_daemon`` wires it) and a
``Dispatcher`` on its own clients listen on loopback. The harness plays SNS: it POSTs to
``/sns`` notifications signed the way SNS signs them (SignatureVersion 2) with its own
certificate, which the endpoint's ``CertificateStore`` finds in its certificate directory
(``CRONCTL_SNS_CERTS``): the endpoint verifies every signature as in production, and the
emulator's SNS (a fresh certificate per message, fetched per delivery) is not what is measured.
The endpoint answers once the dispatch is done (task ARN recorded), so a delivery's latency is
its POST's round trip.

- ``dispatch``: ``deliveries`` POSTs one after the other; 10% are duplicates (a redelivery of a
  message delivered a few slots earlier). The first (cold: first dispatch of a new
  Dispatcher) is reported apart; p50/p99 are over the rest.
- ``dispatch.burst``: ``burst`` crons due at the same minute, POSTed at once over 50
  connections (50 client threads; the endpoint runs routes on its own worker pool).

Floors, measured with raw boto3 on fresh clients against the same server, each delivery's
right after it (interleaved, so that both see the same load; the burst's right after the
burst): a new delivery is 3 calls, the dispatcher's own recorded parameters replayed under a new execution
id: PutItem (the execution record, conditional: it is also the dedupe), RunTask, UpdateItem
(the task ARN); the overlap lock would ride in the record's write (a transaction) and the
registry item is cacheable. A duplicate is 1 call: the record's conditional PutItem, failing.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from bench.env import (
    CallLog,
    bench_settings,
    counts,
    percentile,
    raw_client,
    remove_dir,
    reset,
    row,
    scratch_dir,
)
from reconciler.adapters import sns
from reconciler.adapters.aws import AwsClients
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.quotas import NAMES as API_RATE_NAMES
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import run_pass
from reconciler.service.daemon import readiness_check
from reconciler.service.execution.dispatch import DUPLICATE, STARTED, Dispatcher
from reconciler.service.http.server import DaemonHttpServer
from reconciler.service.http.sns_verify import CertificateStore, SnsVerifier, canonical_string
from tests.support.reconcile_env import cron_yaml

BASE_TIME = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
BURST_TIME = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
CERT_NAME = "SimpleNotificationService-bench.pem"
CERT_URL = f"https://sns.us-east-1.amazonaws.com/{CERT_NAME}"
POST_TIMEOUT_S = 60.0
HTTP_STOP_S = 10.0
CONNECTIONS = 50
DUPLICATE_EVERY = 10  # every 10th delivery is a redelivery: 10% duplicates
RUNTASK_BURST, RUNTASK_RATE = 100, 20.0  # Fargate RunTask default quota: burst 100, 20/s


class Signer:
    """Signs notifications like SNS (SignatureVersion 2, SHA256withRSA) with a bench key whose
    certificate is written to ``certs_dir``."""

    def __init__(self, certs_dir: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=1)).sign(self.key, hashes.SHA256()))
        Path(certs_dir, CERT_NAME).write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def envelope(self, topic_arn: str, cron: str, at: datetime) -> bytes:
        message = {
            "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic_arn,
            "Message": json.dumps({"cron": cron,
                                   "scheduled_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "SignatureVersion": "2", "SigningCertURL": CERT_URL,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}
        signature = self.key.sign(canonical_string(message), padding.PKCS1v15(),
                                  hashes.SHA256())
        message["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(message).encode()


REDELIVERIES, REDELIVERY_S = 30, 1.0


def post(address: tuple[str, int], body: bytes) -> tuple[float, str]:
    """(seconds, dispatch status) of one delivery; raises unless answered 200."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(*address, timeout=POST_TIMEOUT_S)
    try:
        conn.request("POST", "/sns", body, headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "Notification"})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    seconds = time.monotonic() - started
    if response.status != 200:
        raise RuntimeError(f"POST /sns answered {response.status}: {answer[:300]!r}")
    return seconds, json.loads(answer).get("status", "")


def deliver(address: tuple[str, int], body: bytes) -> tuple[float, str]:
    """``post`` delivered as SNS does: a 503 (RunTask paced past the request's wait, or
    another transient refusal) is delivered again, after ``REDELIVERY_S``, at most
    ``REDELIVERIES`` times; (seconds from the first attempt, dispatch status)."""
    started = time.monotonic()
    for _ in range(REDELIVERIES):
        try:
            _seconds, status = post(address, body)
            return time.monotonic() - started, status
        except RuntimeError as exc:
            if "answered 503" not in str(exc):
                raise
            time.sleep(REDELIVERY_S)  # SNS's delivery policy waits before trying again
    return post(address, body)


def _plan(deliveries: int) -> list[int]:
    """Message index per delivery slot: new messages in order, every 10th slot a duplicate of
    the message delivered three new messages earlier."""
    slots, fresh = [], 0
    for slot in range(deliveries):
        if slot % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and fresh >= 3:
            slots.append(fresh - 3)
        else:
            slots.append(fresh)
            fresh += 1
    return slots


def run(url: str, deliveries: int, burst: int) -> list:
    """The ``dispatch`` and ``dispatch.burst`` rows."""
    reset(url)
    # moto never throttles; RunTask is paced at AWS's Fargate default all the same (a burst of
    # 100, then 20 per second), as the deployed dispatcher is: the burst row measures it
    settings = bench_settings(url, listen="127.0.0.1:0", api_rates=tuple(
        f"{name}=100000/100000" for name in API_RATE_NAMES if name != "ecs.RunTask"))
    admin = AwsClients(settings)
    infra = bootstrap(admin, settings)
    slots = _plan(deliveries)
    fresh = max(slots) + 1
    ticks = [f"tick-{i:05d}" for i in range(fresh)]
    bursts = [f"burst-{i:05d}" for i in range(burst)]
    applied = run_pass(admin, settings, dry_run=False, source=Snapshot(commit="d" * 40, files={
        f"crons.d/{name}.yaml": cron_yaml("cron(0 5 * * ? *)", "busybox").encode()
        for name in ticks + bursts}))
    if not applied.ok:
        raise RuntimeError(f"reconcile failed: {applied.errors} {applied.apply_errors}")

    certs = scratch_dir("bench-certs-")
    signer = Signer(certs)
    daemon_clients = AwsClients(settings)
    dispatcher = Dispatcher(daemon_clients, settings)
    dispatcher.warm()  # as the daemon does when it is built (service/wiring.py)
    log = CallLog(daemon_clients, ("dynamodb", "ecs", "ec2"), keep_params=True)
    http_server = DaemonHttpServer(
        settings.listen, SnsVerifier(infra.topic_arn, CertificateStore(certs)),
        on_notification=dispatcher.handle_sns_message,
        on_subscription_confirmation=lambda topic, token: sns.confirm_subscription(
            daemon_clients, topic, token),
        readiness=readiness_check(daemon_clients, settings.registry_table))
    messages = [signer.envelope(infra.topic_arn, name, BASE_TIME) for name in ticks]
    burst_messages = [signer.envelope(infra.topic_arn, name, BURST_TIME) for name in bursts]
    expected = [STARTED if i == 0 or slots[i] > max(slots[:i]) else DUPLICATE
                for i in range(len(slots))]
    http_server.start()
    try:
        address = _address(http_server)
        latencies, floor_latencies, statuses, per_delivery = [], [], [], []
        floor = None
        # Each delivery is followed by its floor (interleaved: both see the same load).
        for i, index in enumerate(slots):
            seconds, status = post(address, messages[index])
            latencies.append(seconds)
            statuses.append(status)
            per_delivery.append(log.take())
            if floor is None:  # the dispatcher's own parameters, from its first dispatch
                floor = _Floor(url, settings, per_delivery[0])
            floor_latencies.append(floor.dispatch(f"floor-{index:05d}",
                                                  new=expected[i] == STARTED))
        wall = sum(latencies)
        burst_started = time.monotonic()
        with ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="bench-sns") as pool:
            burst_results = list(pool.map(lambda body: deliver(address, body), burst_messages))
        burst_wall = time.monotonic() - burst_started
        runtask_starts = [t - burst_started for op, t in log.starts if op == "ecs.RunTask"]
        burst_calls = log.take()
    finally:
        if not http_server.stop(HTTP_STOP_S):
            raise RuntimeError("the HTTP endpoint did not stop in time")
        remove_dir(certs)
    if statuses != expected:
        raise RuntimeError(f"unexpected dispatch outcomes: {statuses} (expected {expected})")
    if any(status != STARTED for _s, status in burst_results):
        raise RuntimeError(f"burst: not all started: {[s for _x, s in burst_results]}")
    floor_burst_s = floor.burst([f"floor-burst-{i:05d}" for i in range(burst)])

    all_calls = counts([c for calls in per_delivery for c in calls])
    warm, floor_warm = [x * 1000 for x in latencies[1:]], [x * 1000 for x in floor_latencies[1:]]
    duplicates = expected.count(DUPLICATE)
    p50, p99 = _p(warm, 0.50), _p(warm, 0.99)
    f50, f99 = _p(floor_warm, 0.50), _p(floor_warm, 0.99)
    dispatch_row = row(
        "dispatch", deliveries, wall, all_calls, 3 * (deliveries - duplicates) + duplicates,
        sum(floor_latencies), "3 calls per new delivery (PutItem record, RunTask, UpdateItem "
        "task ARN) + 1 per duplicate (the record's conditional PutItem, failing)",
        duplicates=duplicates, p50_ms=round(p50, 2), p99_ms=round(p99, 2),
        floor_p50_ms=round(f50, 2), floor_p99_ms=round(f99, 2),
        p99_over_floor=round(p99 / f99, 2) if f99 else None,
        cold_ms=round(latencies[0] * 1000, 2), floor_cold_ms=round(floor_latencies[0] * 1000, 2),
        cold_calls_by_operation=counts(per_delivery[0]),
        calls_per_new_delivery=_per(per_delivery, expected, STARTED),
        calls_per_duplicate=_per(per_delivery, expected, DUPLICATE),
        path="harness POST /sns (SNS-signed) -> daemon HTTP endpoint -> Dispatcher",
        target_p99_over_floor=1.5)
    burst_row = row(
        "dispatch.burst", burst, burst_wall, counts(burst_calls), 3 * burst, floor_burst_s,
        f"3 calls per delivery, raw boto3 over {CONNECTIONS} threads",
        connections=CONNECTIONS, all_started=True,
        runtask_throttled_if_unpaced=throttled(sorted(runtask_starts)),
        runtask_quota_s=round(max(0.0, (burst - RUNTASK_BURST) / RUNTASK_RATE), 1),
        target_s=round(1.2 * max(0.0, (burst - RUNTASK_BURST) / RUNTASK_RATE), 1),
        path="harness POST /sns x 50 connections -> daemon HTTP endpoint (16 route workers) "
             "-> Dispatcher; moto does not throttle RunTask (runtask_throttled_if_unpaced is "
             "SIMULATED from the RunTask start times measured here)")
    return [dispatch_row, burst_row]


def throttled(starts: list[float], burst: int = RUNTASK_BURST,
              rate: float = RUNTASK_RATE) -> int:
    """SIMULATED: how many RunTask calls, arriving at ``starts`` (seconds, ascending: the pace
    measured on moto), a token bucket of ``burst`` then ``rate``/s would refuse (AWS answers
    ThrottlingException); the dispatcher has no client-side pacing of its own."""
    tokens, last, refused = float(burst), 0.0, 0
    for t in starts:
        tokens = min(burst, tokens + (t - last) * rate)
        last = t
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            refused += 1
    return refused


def _p(values: list[float], fraction: float) -> float:
    return percentile(values, fraction) if values else 0.0


def _per(per_delivery, expected, status) -> dict[str, float]:
    chosen = [calls for calls, s in zip(per_delivery, expected, strict=True) if s == status]
    if status == STARTED:
        chosen = chosen[1:]  # the cold first one is reported apart
    if not chosen:
        return {}
    return {op: round(c / len(chosen), 2)
            for op, c in counts([c for calls in chosen for c in calls]).items()}


def _address(server: DaemonHttpServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


class _Floor:
    """Raw boto3 making a dispatch's floor calls with the dispatcher's recorded parameters
    (from its first dispatch), on fresh clients (so the first floor dispatch is cold too)."""

    def __init__(self, url: str, settings, cold_calls: list) -> None:
        self.url = url
        table = settings.executions_table
        self.put = self._record_put(cold_calls, table)
        self.run_task = self._first(cold_calls, "ecs.RunTask", None)
        self.update = self._first(cold_calls, "dynamodb.UpdateItem", table)
        self.ddb, self.ecs = raw_client(url, "dynamodb"), raw_client(url, "ecs")

    @classmethod
    def _record_put(cls, calls: list, table: str) -> dict:
        """The record's conditional PutItem: the dispatcher's own, or the record's Put of the
        transaction that takes the lock with it (its other items are not part of the floor).
        """
        for name, params, _s in calls:
            if name == "dynamodb.TransactWriteItems":
                put = params["TransactItems"][0].get("Put") or {}
                if put.get("TableName") == table:
                    return dict(put)
        return cls._first(calls, "dynamodb.PutItem", table)

    @staticmethod
    def _first(calls: list, op: str, table: str | None) -> dict:
        for name, params, _s in calls:
            if name == op and (table is None or params.get("TableName") == table):
                return params
        raise RuntimeError(f"the first dispatch made no {op} on {table}: {counts(calls)}")

    def _calls(self, eid: str, new: bool, ddb, ecs) -> None:
        item = {**self.put["Item"], "execution_id": {"S": eid}}
        try:
            ddb.put_item(**{**self.put, "Item": item})
        except ddb.exceptions.ConditionalCheckFailedException:
            if new:
                raise
            return
        if not new:
            raise RuntimeError(f"floor duplicate {eid} was written")
        ecs.run_task(**{**self.run_task, "startedBy": eid[:36]})
        try:
            ddb.update_item(**{**self.update, "Key": {"execution_id": {"S": eid}}})
        except ddb.exceptions.ConditionalCheckFailedException:
            pass  # still the one call it takes

    def dispatch(self, eid: str, new: bool) -> float:
        started = time.monotonic()
        self._calls(eid, new, self.ddb, self.ecs)
        return time.monotonic() - started

    def burst(self, eids: list[str]) -> float:
        started = time.monotonic()
        with ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="bench-floor") as pool:
            list(pool.map(lambda eid: self._calls(eid, True, self.ddb, self.ecs), eids))
        return time.monotonic() - started

"""Reconcile rows for N crons on ``IMAGES`` images (rules backend), from an empty namespace:

- ``reconcile.initial``: the first apply (the warm daemon's first pass);
- ``reconcile.noop_same_commit``: a pass at the same commit right after (as the CLI makes it:
  it reads the record of the applied commit);
- ``reconcile.one_change``: the warm daemon's pass at a new commit where one cron has another
  schedule and one more environment variable: same process memory (known state) and lease
  generation as the converged pass before, so an *incremental* pass (nothing observed);
- ``reconcile.drift_sweep``: at that same commit, after drift was made out of band on
  ``drifted(n)`` crons (a third of their rules disabled, a third lost their targets, a third
  deleted), the warm daemon's drift check, due ``drift_check_s`` later: a *sweep* (list calls
  + the budgeted rotating deep check, ``core/plan/sweep.py``) that repairs at once what the
  lists show (disabled, deleted rules) and a lost target when the rotation reads its rule.

Passes run in this process with ``run_pass`` on warm clients, holding the leader lease and
keeping the reconcile loop's memory between passes (``WarmDaemon``), the cron files given as a
Snapshot (no Git). Calls are counted client-side (botocore hooks) and their parameters
recorded; the floors are measured afterwards against the same server with raw boto3 making
exactly the floor's calls (recorded parameters replayed, or the reads a sweep cannot do
without).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore import xform_name
from botocore.exceptions import ClientError

from bench.env import (
    CallLog,
    bench_settings,
    pages,
    raw_client,
    reset,
    row,
    timed_calls,
)
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.lease import LeaderLease
from reconciler.adapters.registry import NAMESPACE_ITEM
from reconciler.core.cronfile.parse_cache import ParseCache
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.plan.pass_check import PassPolicy
from reconciler.core.plan.sweep import budget
from reconciler.core.quotas import DEFAULT_BUCKETS
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import PassResult, run_pass
from reconciler.service.control.reconcile_loop import _remembered
from reconciler.service.namespace import resolve
from reconciler.settings import MAX_LEASE_S
from tests.support.reconcile_env import cron_yaml

IMAGES = 50
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40
SERVICES = ("dynamodb", "events", "scheduler", "ecs", "sts")
# botocore's event names use the service id ("eventbridge"); clients are made by name.
CLIENT_NAMES = {"eventbridge": "events"}
RULES_PAGE = 100  # ListRules' largest page (Limit)


def cron_name(index: int) -> str:
    return f"job-{index:05d}"


def image(index: int) -> str:
    return f"public.ecr.aws/docker/library/busybox:1.{index % IMAGES}"


def images(n: int) -> int:
    return min(n, IMAGES)


def snapshot(n: int, commit: str, edited: frozenset[int] = frozenset()) -> Snapshot:
    """N cron files spread over ``IMAGES`` images; crons in ``edited`` have another schedule
    and one more environment variable."""
    return Snapshot(commit=commit, files=files(n, edited))


def files(n: int, edited: frozenset[int] = frozenset()) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        env = {"JOB": str(i), **({"EDITED": "yes"} if i in edited else {})}
        schedule = "rate(7 minutes)" if i in edited else f"cron({i % 60} {i % 24} * * ? *)"
        out[f"crons.d/{cron_name(i)}.yaml"] = cron_yaml(schedule, image(i), env=env).encode()
    return out


def drifted(n: int) -> int:
    """Crons drifted out of band before the sweep: 1%, at least 3 (one of each kind)."""
    return max(3, n // 100)


def _checked(label: str, result: PassResult) -> PassResult:
    if not result.ok:
        raise RuntimeError(f"{label}: pass failed: errors={result.errors} "
                           f"plan_errors={result.plan and result.plan.errors} "
                           f"apply_errors={result.apply_errors}")
    return result


def _plan(result: PassResult) -> dict[str, int]:
    return result.plan.counts() if result.plan else {}


EDITED = frozenset({0})  # the cron changed by ``reconcile.one_change``


class WarmDaemon:
    """The reconcile loop's passes on this thread: the leader lease held (renewed before each
    pass), the memory of the last converged pass and the known state kept between passes,
    exactly as ``ReconcileLoop._once`` keeps them."""

    def __init__(self, clients: AwsClients, settings) -> None:
        self.clients, self.settings = clients, settings
        self.lease = LeaderLease(clients, settings, "bench-daemon", MAX_LEASE_S)
        if not self.lease.acquire():
            raise RuntimeError("bench: the leader lease is held by another owner")
        self.applied = None
        self.known = None
        self.load_cache = ParseCache()

    def run(self, source: Snapshot, now: datetime | None = None) -> PassResult:
        self.lease.renew()  # outside the pass: its calls are the pass's own
        fence = self.lease.fence()
        policy = PassPolicy(drift_check_s=self.settings.drift_check_s, remembered=self.applied,
                            known=self.known, load_cache=self.load_cache)
        result = run_pass(self.clients, self.settings, dry_run=False, source=source,
                          fence=fence, policy=policy, now=now)
        self.applied = _remembered(result, fence.generation)
        self.known = self.known if result.cheap else result.known
        return result

    def release(self) -> None:
        self.lease.release()


def _plain_writes(calls):
    """Registry writes as the fence sends them (``TransactWriteItems``: the lease's condition
    check + one Put or Delete) as the plain ``PutItem`` / ``DeleteItem`` they carry: one
    call either way; the floors replay the plain write."""
    out = []
    for op, params, seconds in calls:
        if op == "dynamodb.TransactWriteItems" and params:
            items = [i for i in params.get("TransactItems", []) if "ConditionCheck" not in i]
            if len(items) == 1 and ("Put" in items[0] or "Delete" in items[0]):
                kind = "Put" if "Put" in items[0] else "Delete"
                out.append((f"dynamodb.{kind}Item", items[0][kind], seconds))
                continue
        out.append((op, params, seconds))
    return out


def sweep_budget(settings, n: int, families: int) -> dict[str, int]:
    """The one-by-one reads a sweep of ``n`` rules and ``families`` task definitions makes."""
    interval, period = settings.drift_check_s, settings.deep_check_s
    return {"eventbridge.ListTargetsByRule": budget(n, interval, period,
                                                    DEFAULT_BUCKETS["events"]),
            "ecs.DescribeTaskDefinition": budget(families, interval, period,
                                                 DEFAULT_BUCKETS["ecs-taskdef-read"])}


@dataclass
class ReconcileRun:
    rows: list
    initial_sequence: list  # (operation, None, seconds) of the first apply, in order
    # Afterwards the namespace holds ``files(n, EDITED)`` applied (floors live apart).


class Replayer:
    """Raw boto3 clients on the server; ``run(op, params)`` makes one call (a conditional
    failure is an answer like any other: the call was made)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: dict[str, object] = {}

    def client(self, service_key: str):
        name = CLIENT_NAMES.get(service_key, service_key)
        if name not in self._clients:
            self._clients[name] = raw_client(self.url, name)
        return self._clients[name]

    def run(self, op: str, params: dict | None) -> None:
        service, operation = op.split(".")
        try:
            getattr(self.client(service), xform_name(operation))(**(params or {}))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def warm(self, services=("eventbridge", "dynamodb", "ecs")) -> None:
        """Open each client's connection first (the passes ran on warm clients too)."""
        for service in services:
            client = self.client(service)
            if service == "eventbridge":
                client.list_rules(Limit=1)
            elif service == "dynamodb":
                client.list_tables(Limit=1)
            else:
                client.list_clusters(maxResults=1)


FLOOR_PREFIX = "floor-"
FLOOR_TABLE_SUFFIX = "-floor"


def _floor_table(replayer: Replayer, registry: str) -> None:
    """The floor's registry table (the registry's schema), so that the floor's items are not
    crons of the namespace (the daemon row may run on this namespace next)."""
    ddb = replayer.client("dynamodb")
    ddb.create_table(TableName=registry + FLOOR_TABLE_SUFFIX, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}])


def _renamed(op: str, params: dict) -> dict:
    """The same call on a resource of the floor's own (``floor-`` names, the floor's registry
    table): a floor replay creates what the pass created and updates what it updated, next to
    the pass's resources, conditions and all."""
    params = dict(params)
    if op in ("eventbridge.PutRule", "eventbridge.TagResource"):
        if "Name" in params:
            params["Name"] = FLOOR_PREFIX + params["Name"]
        if "ResourceARN" in params:
            arn, _, name = params["ResourceARN"].rpartition("/")
            params["ResourceARN"] = f"{arn}/{FLOOR_PREFIX}{name}"
    elif op == "eventbridge.PutTargets":
        params["Rule"] = FLOOR_PREFIX + params["Rule"]
    elif op == "ecs.RegisterTaskDefinition":
        params["family"] = FLOOR_PREFIX + params["family"]
    elif op in ("dynamodb.PutItem", "dynamodb.UpdateItem"):
        params["TableName"] += FLOOR_TABLE_SUFFIX
    return params


def _select(calls, wanted: dict[str, int], table: str | None = None):
    """The first ``wanted[op]`` recorded calls of each op (registry items only for DynamoDB:
    not the namespace's own item), in recorded order, renamed to the floor's resources."""
    left = dict(wanted)
    out = []
    for op, params, seconds in calls:
        if left.get(op, 0) <= 0:
            continue
        if op.startswith("dynamodb.") and (params.get("TableName") != table or str(
                (params.get("Item") or params.get("Key") or {}).get("name", {}).get(
                    "S", "#")).startswith("#")):
            continue
        left[op] -= 1
        out.append((op, _renamed(op, params), seconds))
    return out


def run(url: str, n: int) -> ReconcileRun:
    """The four passes for ``n`` crons, then their floors, from a reset moto server."""
    reset(url)
    settings = bench_settings(url, scheduler="rules")
    clients = AwsClients(settings)
    bootstrap(clients, settings)  # as a real namespace: the daemon row may reuse it
    # as the CLI and the daemon do: the passes record the namespace settings' version, so a
    # daemon started on this namespace finds the commit applied under its own settings
    settings = resolve(clients, settings)
    log = CallLog(clients, SERVICES, keep_params=True)
    log.take()
    k = images(n)

    daemon = WarmDaemon(clients, settings)
    try:
        initial = _checked("initial", daemon.run(snapshot(n, COMMIT_A)))
        initial_calls = _plain_writes(log.take())
        noop = _checked("noop", run_pass(clients, settings, dry_run=False,
                                         source=snapshot(n, COMMIT_A)))
        log.take()
        edited = EDITED
        # the warm daemon: same process memory and lease generation as the converged pass
        change = _checked("one change", daemon.run(snapshot(n, COMMIT_B, edited)))
        change_calls = _plain_writes(log.take())
        replayer = Replayer(url)
        drift = _make_drift(replayer, settings.namespace, n)
        # The drift check: a sweep, due --drift-check-interval after the last one; a pass at
        # the same commit is otherwise cheap and reads nothing.
        later = datetime.now(UTC) + timedelta(seconds=settings.drift_check_s)
        sweep = _checked("drift sweep", daemon.run(snapshot(n, COMMIT_B, edited), now=later))
        sweep_calls = log.take()
        repaired = _repaired(replayer, drift)
        log.recording = False
    finally:
        daemon.release()
    deep = sweep.plan.deep_check if sweep.plan else None

    # -- floors, against the same server -------------------------------------------------
    replayer.warm()
    registry = settings.registry_table
    _floor_table(replayer, registry)
    # First apply: K RegisterTaskDefinition (one per image: crons share task definitions) +
    # N x (PutRule + PutTargets) (a rule and its target are two APIs; PutRule takes the
    # ownership tags) + N registry PutItem (one item per cron; no batching: BatchWriteItem
    # has no conditions). No read is needed: the namespace is known to be empty from the
    # registry, which the floor leaves out (the CLI's fixed start-up reads, at most 4).
    initial_floor = _select(initial_calls, {"ecs.RegisterTaskDefinition": k,
                                            "eventbridge.PutRule": n,
                                            "eventbridge.PutTargets": n,
                                            "dynamodb.PutItem": n}, registry)
    initial_floor_s = timed_calls(initial_floor, replayer.run)
    # No-op at an unchanged commit: 1 GetItem, the namespace item holding the last applied
    # commit; nothing else can change what is applied (drift is the sweep's job). The
    # issue's target allows up to ceil(N/500) DynamoDB requests and 0 control-plane calls.
    noop_floor = [("dynamodb.GetItem", {"TableName": registry, "ConsistentRead": True,
                                        "Key": {"name": {"S": NAMESPACE_ITEM}}}, 0.0)]
    noop_floor_s = min(timed_calls(noop_floor, replayer.run) for _ in range(5))
    # One changed cron (schedule and environment): PutRule (the expression) + PutTargets
    # (the input/overrides) + 1 registry write (the new spec). Its task definition is
    # unchanged (same image); tags are unchanged (set at creation). Warm daemon: no read.
    # Replayed on the floor's copy of that cron (made by the initial floor): an update too.
    # (The pass adds TagResource, which keeps the ownership tags through outside edits, and
    # the record of the applied commit: cleared before, written after.)
    change_floor = _select(change_calls, {"eventbridge.PutRule": 1,
                                          "eventbridge.PutTargets": 1,
                                          "dynamodb.PutItem": 1}, registry)
    change_floor += [c for c in _select(change_calls, {"dynamodb.UpdateItem": 1}, registry)
                     if not any(op.startswith("dynamodb.") for op, *_ in change_floor)]
    change_floor_s = timed_calls(change_floor, replayer.run)
    # The sweep + the repairs: ceil(N/100) ListRules (a page of 100 carries each rule's
    # expression and state) + 1 ListTaskDefinitionFamilies + the budget of one-by-one reads
    # (ListTargetsByRule for B rules: a rule's targets show only per rule; DescribeTaskDefinition
    # for B' families; B = N x interval / deep-check period, capped at 20% of the quota)
    # + the repairs the sweep made: PutRule for each disabled or deleted rule, PutTargets for
    # each deleted rule (and for a rule that lost its targets, when the rotation read it). No
    # registry read: desired state is the files, ownership is in the names.
    reads = sweep_budget(settings, n, k)
    sweep_floor, sweep_floor_s = _sweep_floor(replayer, settings.namespace, sweep_calls,
                                              drift, reads)

    rows = [
        row("reconcile.initial", n, initial.duration_s, initial.api_calls, len(initial_floor),
            initial_floor_s, "K RegisterTaskDefinition + N x (PutRule + PutTargets) + N "
            "registry PutItem", images=k, plan=_plan(initial)),
        row("reconcile.noop_same_commit", n, noop.duration_s, noop.api_calls, 1, noop_floor_s,
            "1 GetItem of the namespace item (last applied commit); target: 0 control-plane "
            "calls, <= ceil(N/500) DynamoDB requests", plan=_plan(noop),
            target_calls=pages(n, 500)),
        row("reconcile.one_change", n, change.duration_s, change.api_calls, len(change_floor),
            change_floor_s, "PutRule + PutTargets + 1 registry write (warm daemon: known "
            "state, nothing read); target <= 6 calls", plan=_plan(change), target_calls=6,
            check=change.check.kind.value),
        row("reconcile.drift_sweep", n, sweep.duration_s, sweep.api_calls,
            sum(sweep_floor.values()),
            sweep_floor_s, "ceil(N/100) ListRules + ListTaskDefinitionFamilies + the "
            "deep-check budget (ListTargetsByRule x N*interval/period, DescribeTaskDefinition "
            "x K*interval/period) + repairs (PutRule per disabled/deleted rule, PutTargets "
            "per deleted rule or rule without targets the rotation read)", plan=_plan(sweep),
            drifted=len(drift), drift_repaired=repaired, floor_by_operation=sweep_floor,
            check=sweep.check.kind.value, budget=reads,
            deep_read=deep.read if deep else None, not_deep_read=deep.listed if deep else None,
            rotation_sweeps=math.ceil(n / max(1, reads["eventbridge.ListTargetsByRule"]))),
    ]
    return ReconcileRun(rows, [(op, None, s) for op, _params, s in initial_calls])


def _all_rules(replayer: Replayer, namespace: str) -> list[dict]:
    events = replayer.client("eventbridge")
    rules, token = [], None
    for _page in range(10_000):
        kwargs = {"NamePrefix": f"{namespace}-", "Limit": RULES_PAGE}
        if token:
            kwargs["NextToken"] = token
        answer = events.list_rules(**kwargs)
        rules += answer["Rules"]
        token = answer.get("NextToken")
        if not token:
            break
    return sorted(rules, key=lambda r: r["Name"])


def _make_drift(replayer: Replayer, namespace: str, n: int) -> list[tuple[str, str]]:
    """(kind, rule name) of the drift made out of band: ``disabled``, ``no-targets``,
    ``deleted``, spread over the fleet."""
    rules = [r["Name"] for r in _all_rules(replayer, namespace)
             if r["Name"].startswith(f"{namespace}-{cron_name(0)[:4]}")]  # crons' rules only
    count = min(drifted(n), len(rules))
    step = max(1, len(rules) // count)
    events = replayer.client("eventbridge")
    out = []
    for i, name in enumerate(rules[::step][:count]):
        kind = ("disabled", "no-targets", "deleted")[i % 3]
        if kind == "disabled":
            events.disable_rule(Name=name)
        else:
            ids = [t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"]]
            if ids:
                events.remove_targets(Rule=name, Ids=ids)
            if kind == "deleted":
                events.delete_rule(Name=name)
        out.append((kind, name))
    return out


def _repaired(replayer: Replayer, drift: list[tuple[str, str]]) -> int:
    """How many drifted rules are back (enabled, with targets)."""
    events = replayer.client("eventbridge")
    ok = 0
    for _kind, name in drift:
        try:
            state = events.describe_rule(Name=name)["State"]
            targets = events.list_targets_by_rule(Rule=name)["Targets"]
        except ClientError:
            continue
        ok += state == "ENABLED" and bool(targets)
    return ok


def _sweep_floor(replayer: Replayer, namespace: str, sweep_calls, drift,
                 reads: dict[str, int]) -> tuple[dict[str, int], float]:
    """The sweep's floor, made live: (calls by operation, wall seconds)."""
    events, ecs = replayer.client("eventbridge"), replayer.client("ecs")
    families = ecs.list_task_definition_families(
        familyPrefix=f"{namespace}-td-", status="ACTIVE")["families"][
            :reads["ecs.DescribeTaskDefinition"]]  # not timed
    needs = {("eventbridge.PutRule", name) for kind, name in drift if kind != "no-targets"}
    needs |= {("eventbridge.PutTargets", name) for kind, name in drift if kind != "disabled"}
    repairs = []
    for op, params, _seconds in sweep_calls:
        key = (op, params.get("Name") or params.get("Rule"))
        if key in needs:
            needs.discard(key)
            repairs.append((op, params))
    made: Counter[str] = Counter()
    started = time.monotonic()
    names, token = [], None
    for _page in range(10_000):
        kwargs = {"NamePrefix": f"{namespace}-", "Limit": RULES_PAGE}
        if token:
            kwargs["NextToken"] = token
        answer = events.list_rules(**kwargs)
        made["eventbridge.ListRules"] += 1
        # the crons' rules (not bootstrap's ECS events rule, which the page lists too)
        names += [r["Name"] for r in answer["Rules"]
                  if r["Name"].startswith(f"{namespace}-{cron_name(0)[:4]}")]
        token = answer.get("NextToken")
        if not token:
            break
    ecs.list_task_definition_families(familyPrefix=f"{namespace}-td-", status="ACTIVE")
    made["ecs.ListTaskDefinitionFamilies"] += 1
    for name in names[:reads["eventbridge.ListTargetsByRule"]]:
        events.list_targets_by_rule(Rule=name)
        made["eventbridge.ListTargetsByRule"] += 1
    for family in families:
        ecs.describe_task_definition(taskDefinition=family)
        made["ecs.DescribeTaskDefinition"] += 1
    for op, params in repairs:
        replayer.run(op, params)
        made[op] += 1
    return dict(sorted(made.items())), time.monotonic() - started

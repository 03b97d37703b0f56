"""The property every chaos scenario ends with, written once.

For every scheduled run involved (the ids a scenario names, and every record in the executions
table):
- ECS started exactly one task with ``startedBy`` = the execution id (of a retried run: of each
  attempt, ``startedBy`` = the attempt's token) and the record names that task (an earlier
  attempt's in ``tries``); or none, and the record is FAILED_TO_START or LOST with a reason
  (SKIPPED too, where a scenario says an overlap is expected);
- the record is visible to the watchdog exactly while it is open (the sparse ``unfinished``
  marker), and no open record is left PENDING without a task;
- no overlap lock is held by a finished (terminal) run, or by a run that has no record.
Where the control plane is involved: the registry, the schedules on AWS and the cron files
agree (a dry-run pass plans nothing; each registry item's schedule is its rule's).

Tasks are counted with ListTasks only: the emulator advances a task's ``lastStatus`` on every
DescribeTasks, so looking must not change what is looked at.

``assert_runs`` waits (with a deadline) until the property holds, since a watchdog or a
redelivered event may still be settling things, and fails with every violation it last saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from reconciler.core.executions.records import (
    FAILED_TO_START,
    LOST,
    PENDING,
    SKIPPED,
    TERMINAL,
    attempt_token,
    parse_time,
)
from reconciler.service.control.reconcile import run_pass
from tests.chaos.namespace import ChaosNamespace
from tests.support.serve_process import ServeProcess
from tests.support.waiting import wait_for

ENDED_WITHOUT_TASK = (FAILED_TO_START, LOST)


def task_arns(ns: ChaosNamespace, execution_id: str) -> list[str]:
    """Every task ECS started with ``startedBy`` = ``execution_id``, whatever its state."""
    ecs = ns.clients.client("ecs")
    arns: set[str] = set()
    for desired in ("RUNNING", "PENDING", "STOPPED"):
        arns.update(ecs.list_tasks(cluster=ns.settings.cluster_name, startedBy=execution_id,
                                   desiredStatus=desired)["taskArns"])
    return sorted(arns)


def locks(ns: ChaosNamespace) -> dict[str, str]:
    """Overlap locks held now: cron -> holder execution id."""
    items = ns.clients.client("dynamodb").scan(
        TableName=ns.settings.leases_table, ConsistentRead=True)["Items"]
    return {item["lease_id"]["S"].removeprefix("lock#"): item["execution_id"]["S"]
            for item in items if item["lease_id"]["S"].startswith("lock#")}


def run_violations(ns: ChaosNamespace, execution_ids: Iterable[str] = (), *,
                   allow_skipped: bool = False) -> list[str]:
    """Every way the runs break the property now (empty when it holds)."""
    records = {r["execution_id"]: r for r in ns.executions()}
    problems = []
    allowed_without_task = ENDED_WITHOUT_TASK + ((SKIPPED,) if allow_skipped else ())
    for eid in sorted(set(execution_ids) | set(records)):
        record = records.get(eid)
        attempt = int((record or {}).get("attempt") or 1)
        arns = task_arns(ns, attempt_token(eid, attempt))
        if record is None:
            problems.append(f"{eid}: no execution record (the run is lost); tasks {arns}")
            continue
        for entry in record.get("tries") or []:     # the earlier attempts of a retried run
            done = {k: next(iter(v.values())) for k, v in entry["M"].items()}
            earlier = task_arns(ns, attempt_token(eid, int(done["attempt"])))
            if earlier != ([done["task_arn"]] if done.get("task_arn") else []):
                problems.append(f"{eid}: attempt {done['attempt']} started {earlier}, its "
                                f"record names {done.get('task_arn')}")
        waiting = record.get("retry_at") and not record.get("task_arn") and \
            parse_time(record["retry_at"]) > datetime.now(UTC)
        status, named = record.get("status"), record.get("task_arn")
        where = f"{eid} ({record.get('cron')} @ {record.get('scheduled_at')}, {status})"
        if len(arns) > 1:
            problems.append(f"{where}: {len(arns)} tasks started: {arns}")
        elif len(arns) == 1:
            if named != arns[0]:
                problems.append(f"{where}: ECS runs {arns[0]} but the record names {named}")
        elif status not in allowed_without_task and not waiting:
            problems.append(f"{where}: no task, and the run is not {allowed_without_task}"
                            + (f" (it names {named})" if named else ""))
        elif not record.get("reason"):
            problems.append(f"{where}: ended without a task and without a reason")
        if status == PENDING and not named and not waiting:
            problems.append(f"{where}: left PENDING without a task (claim until "
                            f"{record.get('claim_until')})")
        if (status in TERMINAL) == ("unfinished" in record):
            problems.append(f"{where}: the 'unfinished' marker is "
                            f"{'present' if 'unfinished' in record else 'missing'}")
    for cron, holder in sorted(locks(ns).items()):
        record = records.get(holder)
        if record is None:
            problems.append(f"lock#{cron} is held by {holder}, which has no record")
        elif record.get("status") in TERMINAL:
            problems.append(f"lock#{cron} is held by {holder}, which ended "
                            f"({record.get('status')})")
    return problems


def assert_runs(ns: ChaosNamespace, execution_ids: Iterable[str] = (), *,
                timeout: float = 15.0, allow_skipped: bool = False,
                daemons: Iterable[ServeProcess] = ()) -> None:
    """Wait until the property holds for these runs (and every other record); fail with the
    violations last seen and the daemons' last log lines."""
    ids = list(execution_ids)
    seen: list[str] = []

    def holds() -> bool:
        seen[:] = run_violations(ns, ids, allow_skipped=allow_skipped)
        return not seen

    try:
        wait_for(holds, timeout=timeout, interval=0.2, message="the runs' property")
    except AssertionError:
        logs = "\n".join(f"--- {d.name} ---\n{d.describe(30)}" for d in daemons)
        raise AssertionError("the property does not hold:\n  " + "\n  ".join(seen)
                             + (f"\n{logs}" if logs else "")) from None


def control_plane_violations(ns: ChaosNamespace) -> list[str]:
    """Where the registry, the rules on AWS and the cron files disagree."""
    from reconciler.adapters import registry

    problems = []
    plan = run_pass(ns.clients, ns.settings, dry_run=True).plan
    if plan is None:
        return ["the dry-run pass could not plan"]
    for change in plan.pending:
        problems.append(f"a dry run would still {change.action} the {change.resource} of "
                        f"{change.cron}: {change.reason}")
    problems += [f"{error.cron}: {error.message}" for error in plan.errors]
    events = ns.clients.client("events")
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix=f"{ns.name}-")["Rules"]}
    items = registry.scan(ns.clients, ns.settings)
    for name, item in sorted(items.items()):
        rule = rules.get(f"{ns.name}-{name}")
        schedule = item.spec.schedule
        if rule is None:
            problems.append(f"registry names {name}, which has no rule")
        elif rule.get("ScheduleExpression") != schedule:
            problems.append(f"{name}: registry says {schedule}, its rule "
                            f"{rule.get('ScheduleExpression')}")
    for rule_name in sorted(set(rules) - {f"{ns.name}-{n}" for n in items}):
        if rule_name != ns.settings.events_rule_name:
            problems.append(f"rule {rule_name} is not in the registry")
    return problems


def assert_control_plane(ns: ChaosNamespace) -> None:
    problems = control_plane_violations(ns)
    assert not problems, "registry and AWS disagree:\n  " + "\n  ".join(problems)

"""make_plan: desired state vs. observed state -> Plan (pure).

Rules the plan keeps:
- nothing that is not ours (registry or tags) is ever changed or deleted: a colliding name is
  a PlanError for that cron only;
- held-back crons (invalid files) and crons with errors keep their live resources as they are,
  including the task definitions their registry items reference;
- more deletions than ``max_deletes`` crons drop every cron deletion (unless allowed);
- rules AWS enforces that an emulator may not are checked here, saying what to set: on Fargate
  the ``awslogs`` log driver (every task definition) and ``secrets`` need an execution role
  (without one nothing changes); the rules backend warns at 80% of the rules quota and, past
  it, creates no new rule (those crons are kept as they are); the Scheduler backend on its
  default role warns that the role must exist; an execution role that is not bootstrap's
  ``<ns>-task-execution`` warns of each cron whose secrets are outside ``/<ns>/`` (all the
  CloudFormation stack's role may read: ``secret_outside_namespace``);
- every change names the changes it waits for (``depends_on``, from the table of rules in
  ``dependencies.py``); apply runs them in that order, never re-deriving it. The listed order
  is one such order: task-definition creates, then per cron its schedule create/update, the
  old backend's schedule delete, its monitor, the registry write (or, for a removed cron,
  schedule and monitor deletes before the registry delete), then task-definition deletes; a
  cron that adopts a live schedule (tagged ours, no registry item) has its registry write
  first;
- a cron that ``replaces`` a live rule tagged ours for it is moved over create-before-delete
  with no run lost or doubled: its registry item first (dispatch must know the cron), then
  the rule handed over to dispatch (an update keeping its expression and state: dispatch
  starts one task per cron and scheduled time, whichever rule fires), then the cron's own
  schedule created, then the rule deleted; a rule not tagged ours for it is an error of the
  cron (nothing of it changes), a rule that is gone needs nothing;
- monitors at the namespace's monitoring service follow ``plan/monitors.py``;
- a one-time ``at()`` cron needs the Scheduler backend (an error of the cron on rules); its
  schedule deletes itself after it ran (``ActionAfterCompletion: DELETE``), so once its time
  has passed (``Deployment.now``) a missing schedule whose registry item records the same
  ``at()`` is done, not drift: a no-op "one-time run done", never re-created; an ``at()``
  already in the past without such an item is an error of the cron (it would never run);
- an ``active`` window is the schedule's StartDate/EndDate (Scheduler) or the rule's state:
  DISABLED outside the window, ENABLED inside it (rules; ``desired.rules_state``);
- a *shallow* observation (seen in a list call only: ``ObservedSchedule.deep`` False, see
  ``core/plan/sweep.py``) shows drift only in the fields the list carries (a rule: expression,
  state, description; a Scheduler schedule: state and target ARN); the others are taken as
  cronctl last wrote them (``seen``: the registry's spec, else the desired one), so a changed
  spec still gets its update and nothing else is reported as drift. A shallow task-definition
  family (listed, not described) is ours: a registry item references it, with its ARN.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from reconciler.core.alerts.decide import slack_warnings
from reconciler.core.desired import (
    CRON_TAG,
    RULE_INPUT_PATHS,
    Deployment,
    DesiredCron,
    DesiredSchedule,
    default_execution_role,
    desired_cron,
    family_of,
    is_ours,
    one_time_problem,
    ours_tags,
    rule_input_template,
    rule_name,
    timezone_problem,
)
from reconciler.core.plan.dependencies import with_dependencies
from reconciler.core.plan.model import (
    Action,
    Change,
    DesiredState,
    Observed,
    ObservedSchedule,
    Plan,
    PlanError,
    Resource,
)
from reconciler.core.plan.monitors import MonitorPlanner, MonitorRecord
from reconciler.core.registry_model import RegistryItem
from reconciler.core.schedule import expressions as schedule_expressions
from reconciler.core.schedule.window import next_boundary
from reconciler.core.spec import CronSpec

ADOPTING = "adopting resource tagged as ours but missing from the registry"
KNOWN_AFTER_APPLY = "(known after apply)"
HELD_BACK = "file invalid: kept as is"
ONE_TIME_DONE = "one-time run done"


def desired_state(specs: tuple[CronSpec, ...], dep: Deployment, *, commit: str | None,
                  held_back: frozenset[str] = frozenset(),
                  held_files: dict[str, str] | None = None,
                  held_reasons: dict[str, tuple[str, ...]] | None = None) -> DesiredState:
    crons = tuple(desired_cron(spec, dep) for spec in sorted(specs, key=lambda s: s.name))
    return DesiredState(commit=commit, backend=dep.backend, crons=crons,
                        held_back=frozenset(held_back), held_files=dict(held_files or {}),
                        held_reasons=dict(held_reasons or {}), deployment=dep)


EXECUTION_ROLE_FIX = ("set --execution-role-arn / CRONCTL_EXECUTION_ROLE_ARN (recorded with "
                      "`cronctl bootstrap --namespace {ns} --execution-role-arn ARN`), or run "
                      "`cronctl bootstrap --namespace {ns}`, which creates and records the role "
                      "{ns}-task-execution")


def execution_role_problem(desired: DesiredState) -> str | None:
    """Fargate refuses a task definition with the awslogs log driver (all of ours) or secrets
    and no execution role: one error for the namespace (nothing is changed)."""
    dep = desired.deployment
    if dep is None or dep.execution_role_arn or not dep.fargate or not desired.crons:
        return None
    return ("the task definitions use the awslogs log driver (and secrets) on Fargate, which "
            "needs a task execution role, and none is set: nothing changed; "
            + EXECUTION_ROLE_FIX.format(ns=dep.namespace))


def secrets_problem(dc: DesiredCron, dep: Deployment | None) -> str | None:
    """Secrets need an execution role on any launch type."""
    if dep is None or dep.execution_role_arn or not dc.spec.container.secrets:
        return None
    return ("container.secrets needs a task execution role, and none is set; "
            + EXECUTION_ROLE_FIX.format(ns=dep.namespace))


def secret_outside_namespace(value_from: str, dep: Deployment) -> bool:
    """Whether ``value_from`` (a ``container.secrets`` value, as ECS reads it) is outside what
    the CloudFormation stack's execution role may read (``deploy/cloudformation.yaml``, policy
    ``read-namespace-secrets``): ``ssm:GetParameters`` on ``parameter/<ns>/*`` and
    ``secretsmanager:GetSecretValue`` on ``secret:/<ns>/*``, both in the namespace's partition,
    region and account (IAM matches ARNs case-sensitively).

    - An SSM parameter name is read in the task's region and account; it is inside when it
      starts with ``/<ns>/`` (its ARN is then ``parameter/<ns>/...``). ``name`` is
      ``parameter/name``, outside; ``<ns>/x`` is no parameter at all (SSM refuses a name with a
      slash that does not start with one).
    - An SSM parameter ARN is inside when its resource starts with ``parameter/<ns>/``
      (``parameter//<ns>/x`` does not match).
    - A Secrets Manager secret ARN, ``secret:<name>-AbCdEf`` (or a partial ARN without the
      random suffix), maybe followed by ``:json-key:version-stage:version-id``, is inside when
      ``<name>`` starts with ``/<ns>/``: a secret named ``<ns>/x`` is outside.
    - Any other ARN, or one of another partition, region or account, is outside."""
    ns = dep.namespace
    if not value_from.startswith("arn:"):
        return not value_from.startswith(f"/{ns}/")
    parts = value_from.split(":", 6)  # arn, partition, service, region, account, resource...
    if len(parts) < 6 or (parts[1], parts[3], parts[4]) != (dep.partition, dep.region,
                                                           dep.account):
        return True
    if parts[2] == "ssm":
        return not parts[5].startswith(f"parameter/{ns}/")
    if parts[2] == "secretsmanager":
        # a secret's name has no ":"; what follows it is json-key:version-stage:version-id
        return len(parts) < 7 or parts[5] != "secret" or not parts[6].startswith(f"/{ns}/")
    return True


def _secrets_scope_warnings(desired: DesiredState) -> list[str]:
    """One warning per cron whose secrets are outside ``/<ns>/`` when the execution role is
    not bootstrap's ``<ns>-task-execution`` (which reads the whole account's in the region):
    the stack's role reads only those under ``/<ns>/``, so the task would fail to start
    (ResourceInitializationError). A warning, not an error: another role may be allowed."""
    dep = desired.deployment
    if dep is None or not dep.execution_role_arn or dep.execution_role_arn == \
            default_execution_role(dep.account, dep.namespace, dep.partition):
        return []
    ns, role = dep.namespace, dep.execution_role_arn
    warnings = []
    for dc in desired.crons:
        if dc.spec.name in desired.held_back:
            continue
        outside = [(var, value) for var, value in dc.spec.container.secrets
                   if secret_outside_namespace(value, dep)]
        if not outside:
            continue
        named = ", ".join(f"{var} ({value})" for var, value in outside)
        one = len(outside) == 1
        it = "it" if one else "them"
        warnings.append(
            f"cron {dc.spec.name}: container.secrets {named} "
            f"{'is' if one else 'are'} outside /{ns}/, which the task execution role "
            f"{role} may not read: it is not bootstrap's {ns}-task-execution, and the "
            f"CloudFormation stack's role reads only SSM parameters and Secrets Manager secrets "
            f"under /{ns}/ of this account and region (a task it cannot read {it} for fails to "
            f"start: ResourceInitializationError); move {it} under /{ns}/ or let {role} "
            f"read {it}")
    return warnings


def rules_needed(desired: DesiredState) -> int:
    """The rules the namespace needs on the default event bus: one per cron on the rules
    backend, plus its ECS events rule."""
    return sum(1 for dc in desired.crons if dc.schedule.backend == "rules") + 1


def _rules_quota_check(desired: DesiredState, observed: Observed
                       ) -> tuple[set[str], list[PlanError], list[str]]:
    """(crons kept because they would need a new rule past the quota, errors, warnings)."""
    dep = desired.deployment
    if dep is None or desired.backend != "rules" or not desired.crons:
        return set(), [], []
    needed, quota = rules_needed(desired), dep.rules_quota
    switch = (f"switch to EventBridge Scheduler (`cronctl bootstrap --namespace "
              f"{dep.namespace} --scheduler scheduler`: millions of schedules)")
    if needed > quota:
        blocked = {dc.spec.name for dc in desired.crons
                   if dc.schedule.backend == "rules" and dc.schedule.name not in observed.rules}
        if blocked:
            return blocked, [PlanError("", "", (
                f"the rules backend needs {needed} rules (one per cron and the ECS events "
                f"rule), past the quota of {quota} rules per event bus: no new rule created, "
                f"{len(blocked)} crons kept as they are; {switch}, or after a quota increase "
                "set --rules-quota / CRONCTL_RULES_QUOTA"))], []
    if needed >= 0.8 * quota:
        return set(), [], [f"the rules backend uses {needed} of the {quota} rules an event bus "
                           f"may have ({needed * 100 // quota}%); {switch}"]
    return set(), [], []


def _scheduler_role_warning(desired: DesiredState) -> list[str]:
    dep = desired.deployment
    if dep is None or desired.backend != "scheduler" or dep.scheduler_role_arn \
            or not desired.crons:
        return []
    return [f"the schedules use the default Scheduler role {dep.scheduler_role}, which must "
            "exist, be trusted by scheduler.amazonaws.com and allow sns:Publish on the topic: "
            f"`cronctl bootstrap --namespace {dep.namespace}` creates and records it, or set "
            "--scheduler-role-arn / CRONCTL_SCHEDULER_ROLE_ARN"]


def make_plan(desired: DesiredState, observed: Observed, settings) -> Plan:
    """``settings`` needs ``namespace``, ``max_deletes`` (None: 10% of the registry's crons,
    at least 3) and ``allow_mass_delete``."""
    ns = settings.namespace
    registry = observed.registry
    problem = execution_role_problem(desired)
    if problem:
        return Plan(commit=desired.commit, errors=(PlanError("", "", problem),),
                    held_back=frozenset(desired.held_back))
    blocked, errors, warnings = _rules_quota_check(desired, observed)
    warnings += _scheduler_role_warning(desired)
    warnings += _secrets_scope_warnings(desired)
    if observed.coverage is not None and observed.coverage.warning:
        warnings.append(observed.coverage.warning)
    # (settings without notifier settings, e.g. a plan computed elsewhere: nothing to warn)
    warnings += slack_warnings([c.spec for c in desired.crons],
                               getattr(settings, "slack_configured", True))
    kept: set[str] = set(blocked)
    monitors = MonitorPlanner(observed, desired.deployment, ns)
    per_cron: dict[str, list[Change]] = {}
    td_users: dict[str, list[DesiredCron]] = {}

    for name in sorted(desired.held_back):
        kept.add(name)
        reg = registry.get(name)
        file = desired.held_files.get(name) or (reg.file if reg else "")
        reasons = desired.held_reasons.get(name, ())
        errors.append(PlanError(name, file, HELD_BACK + "".join(f"; {r}" for r in reasons)))

    for dc in desired.crons:
        name = dc.spec.name
        if name in desired.held_back or name in blocked:
            continue
        now = desired.deployment.now if desired.deployment else None
        problem = _cron_problem(dc, observed, ns, desired.backend) \
            or _past_problem(dc, observed, now) or secrets_problem(dc, desired.deployment)
        if problem:
            errors.append(PlanError(name, dc.spec.file, problem))
            kept.add(name)
            continue
        td_users.setdefault(dc.task_definition.family, []).append(dc)
        per_cron[name] = _cron_changes(dc, observed, ns, desired.commit, monitors, now,
                                       desired.deployment)

    desired_names = {dc.spec.name for dc in desired.crons}
    known = _known_crons(observed, ns) | monitors.owned_crons()
    gone = sorted(known - desired_names - kept)
    for name in gone:
        per_cron[name] = _removal_changes(name, observed, ns, monitors)
    deleting = [name for name in gone if per_cron[name]]
    limit = settings.max_deletes
    if limit is None:
        limit = max(3, len(registry) // 10)
    if len(deleting) > limit and not settings.allow_mass_delete:
        errors.append(PlanError("", "", (
            f"refusing to delete {len(deleting)} crons (more than the limit of {limit}): "
            f"{', '.join(deleting[:10])}{' ...' if len(deleting) > 10 else ''}; "
            "nothing deleted; run with --allow-mass-delete to delete them")))
        for name in deleting:
            per_cron.pop(name)
            kept.add(name)

    td_creates, td_deletes = _task_definition_changes(td_users, kept, observed, ns)
    changes = list(td_creates)
    for name in sorted(per_cron):
        changes.extend(per_cron[name])
    changes.extend(td_deletes)
    errors += monitors.errors
    now = desired.deployment.now if desired.deployment else None
    return Plan(commit=desired.commit, changes=with_dependencies(changes, ns), errors=tuple(errors),
                held_back=frozenset(desired.held_back), warnings=tuple(warnings),
                valid_until=next_boundary([dc.spec for dc in desired.crons], now)
                if now is not None else None, deep_check=observed.coverage)


# The fields a list call carries: all a shallow observation can show drift in.
LISTED = {"rules": ("expression", "state", "description"),
          "scheduler": ("state", "target_arn")}


def seen(live: ObservedSchedule, dc: DesiredCron, reg: RegistryItem | None,
         dep: Deployment | None) -> ObservedSchedule:
    """``live`` as the plan compares it: itself when read one by one (``deep``); a shallow one
    with the fields its list call does not carry taken as cronctl last wrote them: the
    schedule the registry's spec gives when the spec changed since (so the update's diff
    says what changes), else the desired one."""
    if live.deep:
        return live
    base = dc.schedule
    if reg is not None and dep is not None and reg.spec is not dc.spec \
            and reg.spec_hash != dc.spec.spec_hash():
        try:
            before = desired_cron(reg.spec, dep).schedule
        except (ValueError, KeyError, TypeError):
            before = base
        if before.backend == live.current.backend:
            base = before
    if base.backend != live.current.backend:
        return live
    shown = (*LISTED[live.current.backend], "name", "arn", "group")
    if all(getattr(live.current, name) == getattr(base, name) for name in shown):
        return replace(live, current=base)  # what was written, as listed: the desired one
    listed = {name: getattr(live.current, name) for name in LISTED[live.current.backend]}
    current: DesiredSchedule = replace(base, name=live.current.name, arn=live.current.arn,
                                       group=live.current.group, **listed)
    return replace(live, current=current)


def _kind(backend: str) -> str:
    return "rule" if backend == "rules" else "schedule"


def _schedules_of(observed: Observed, backend: str) -> dict[str, ObservedSchedule]:
    return observed.rules if backend == "rules" else observed.schedules


def one_time_done(dc: DesiredCron, reg: RegistryItem | None, now: datetime | None) -> bool:
    """An ``at()`` cron whose time has passed and whose registry item records the same
    ``at()`` and zone: its schedule was created, and once gone it ran and deleted itself."""
    moment = schedule_expressions.one_time_at(dc.spec.schedule, dc.spec.timezone) \
        if schedule_expressions.is_one_time(dc.spec.schedule) else None
    return moment is not None and now is not None and moment <= now and reg is not None \
        and reg.spec.schedule == dc.spec.schedule and reg.spec.timezone == dc.spec.timezone


def _past_problem(dc: DesiredCron, observed: Observed, now: datetime | None) -> str | None:
    """An ``at()`` already past that this cron never had: it would never run."""
    if now is None or not schedule_expressions.is_one_time(dc.spec.schedule):
        return None
    moment = schedule_expressions.one_time_at(dc.spec.schedule, dc.spec.timezone)
    reg = observed.registry.get(dc.spec.name)
    live = _schedules_of(observed, dc.schedule.backend).get(dc.schedule.name)
    if moment is None or moment > now or live is not None or one_time_done(dc, reg, now):
        return None
    return (f"schedule {dc.spec.schedule} ({dc.spec.timezone}) is in the past "
            f"({moment:%Y-%m-%d %H:%M:%S} UTC, now {now:%Y-%m-%d %H:%M:%S} UTC): it would never "
            "run; set a future time, or use cronctl trigger to run it now")


def _cron_problem(dc: DesiredCron, observed: Observed, ns: str, backend: str) -> str | None:
    problem = timezone_problem(dc.spec, backend) or one_time_problem(dc.spec, backend)
    if problem:
        return problem
    reg = observed.registry.get(dc.spec.name)
    live = _schedules_of(observed, backend).get(dc.schedule.name)
    if live is not None and not live.owned_as(dc.spec.name, ns, reg):
        return (f"{_kind(backend)} {dc.schedule.name} exists and is not managed by cronctl "
                f"in namespace {ns}: left untouched")
    replaced = _replaced_rule(dc, observed)
    if replaced is not None and (problem := _replaced_problem(dc, replaced, ns, reg)):
        return problem
    td = observed.task_definitions.get(dc.task_definition.family)
    if td is not None and td.deep and not is_ours(td.tags, ns):
        return (f"task definition family {td.family} exists and is not managed by cronctl: "
                "left untouched")
    return None


def _replaced_rule(dc: DesiredCron, observed: Observed) -> ObservedSchedule | None:
    """The live rule the cron ``replaces``; None when it names none, when the rule is gone,
    or when it names the cron's own rule (``<ns>-<cron>`` on the rules backend: taken over in
    place, as any live schedule of the cron)."""
    replaces = dc.spec.replaces
    if replaces is None or (dc.schedule.backend == "rules" and replaces.rule == dc.schedule.name):
        return None
    return observed.replaced.get(replaces.rule)


def _replaced_problem(dc: DesiredCron, old: ObservedSchedule, ns: str,
                      reg: RegistryItem | None) -> str | None:
    """Why the cron cannot take the rule it ``replaces`` over: not tagged ours for it (nor its
    registered schedule), or not a schedule."""
    name, rule = dc.spec.name, old.current.name
    if not old.owned_as(name, ns, reg):
        owner = (f" (it is tagged for cron {old.cron_tag})"
                 if is_ours(old.tags, ns) and old.cron_tag else "")
        prefix = rule[:-len(name)] if rule.endswith(name) and rule != name else "PREFIX"
        tags = " ".join(f"Key={key},Value={value}" for key, value
                        in sorted(ours_tags(ns, **{CRON_TAG: name}).items()))
        return (f"replaces.rule: rule {rule} is not tagged as cronctl's for cron {name} in "
                f"namespace {ns}{owner}: the rule and cron {name} are left as they are; tag "
                f"the rule as this cron's, with `cronctl import aws --rules-prefix {prefix} "
                f"--adopt --namespace {ns}` (it also writes the cron file: give another --out, "
                f"or --force over this one) or `aws events tag-resource --resource-arn "
                f"{old.arn} --tags {tags}`")
    if not old.current.expression:
        return (f"replaces.rule: rule {rule} has no schedule expression (it matches events): "
                "it is not a cron's schedule and is left as it is; remove 'replaces' from "
                "the file")
    return None


def _hand_over(dc: DesiredCron, old: ObservedSchedule) -> list[Change]:
    """The rule the cron replaces, re-targeted at the dispatch topic with the cron's input,
    its own expression and state kept (``rules.put(hand_over=True)``): from then on its fires
    start at most one task per scheduled time, with the cron's new schedule's. None when it
    already is."""
    wanted = replace(old.current, target_arn=dc.schedule.target_arn,
                     input=rule_input_template(dc.spec.name), input_paths=RULE_INPUT_PATHS)
    diff = _diff(old.current.fields(), wanted.fields())
    if not diff:
        return []
    new = f"{_kind(dc.schedule.backend)} {dc.schedule.name}"
    return [Change(dc.spec.name, Resource.SCHEDULE, Action.UPDATE,
                   f"hand-over: rule {old.current.name}, which this cron replaces, fires "
                   f"through dispatch until {new} exists", diff, wanted, old)]


def _diff(before: dict, after: dict) -> tuple[tuple[str, object, object], ...]:
    keys = sorted(set(before) | set(after))
    return tuple((k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k))


def _schedule_reason(live: ObservedSchedule, dc: DesiredCron, reg: RegistryItem | None) -> str:
    if reg is None:
        return ADOPTING
    if reg.spec_hash != dc.spec.spec_hash():
        return "schedule changed"
    if reg.file != dc.spec.file:
        return "file moved"
    kind = _kind(live.current.backend)
    current, wanted = live.current, dc.schedule
    if current.target_arn is None:
        return "drift: target removed"
    if current.state != wanted.state and dc.spec.active is not None and not dc.spec.suspend:
        return ("active window: inside it, rule enabled" if wanted.state == "ENABLED"
                else "active window: outside it, rule disabled")
    if current.state != wanted.state:
        verb = "disabled" if current.state == "DISABLED" else "enabled"
        return f"drift: {kind} {verb} outside cronctl"
    return f"drift: {kind} edited outside cronctl"


def _cron_changes(dc: DesiredCron, observed: Observed, ns: str, commit,
                  monitors: MonitorPlanner, now: datetime | None = None,
                  dep: Deployment | None = None) -> list[Change]:
    name, wanted = dc.spec.name, dc.schedule
    reg = observed.registry.get(name)
    live = _schedules_of(observed, wanted.backend).get(wanted.name)
    if live is not None:
        live = seen(live, dc, reg, dep)
    replaced = _replaced_rule(dc, observed)
    changes = _hand_over(dc, replaced) if replaced is not None else []
    if live is None and replaced is None and one_time_done(dc, reg, now):
        changes.append(Change(name, Resource.SCHEDULE, Action.NO_OP, ONE_TIME_DONE,
                              desired=wanted))
    elif live is None:
        if replaced is not None:
            reason = f"replaces rule {replaced.current.name}"
        elif reg is None:
            reason = "new cron"
        elif reg.schedule_backend != wanted.backend:
            reason = f"backend switch {reg.schedule_backend} -> {wanted.backend}"
        else:
            reason = f"drift: {_kind(wanted.backend)} deleted outside cronctl"
        changes.append(Change(name, Resource.SCHEDULE, Action.CREATE, reason,
                              _diff({}, wanted.fields()), desired=wanted))
    else:
        diff = () if live.current is wanted else _diff(live.current.fields(), wanted.fields())
        if diff:
            changes.append(Change(name, Resource.SCHEDULE, Action.UPDATE,
                                  _schedule_reason(live, dc, reg), diff, wanted, live))
        else:
            changes.append(Change(name, Resource.SCHEDULE, Action.NO_OP, "up to date",
                                  desired=wanted, observed=live))
    other_backend = "scheduler" if wanted.backend == "rules" else "rules"
    other_name = rule_name(ns, name) if other_backend == "rules" else name
    old = _schedules_of(observed, other_backend).get(other_name)
    if old is not None and old.owned_as(name, ns, reg) \
            and (replaced is None or old.arn != replaced.arn):
        changes.append(Change(name, Resource.SCHEDULE, Action.DELETE,
                              f"backend switch {other_backend} -> {wanted.backend}",
                              _diff(old.current.fields(), {}), observed=old))
    if replaced is not None:
        changes.append(Change(name, Resource.SCHEDULE, Action.DELETE,
                              f"replaced: rule {replaced.current.name}, once "
                              f"{_kind(wanted.backend)} {wanted.name} exists",
                              _diff(replaced.current.fields(), {}), observed=replaced))
    monitor_changes, record = monitors.for_cron(dc.spec, reg)
    changes.extend(monitor_changes)
    taking_over = live is not None or replaced is not None
    registry_change = _registry_change(dc, observed, commit, adopting=taking_over,
                                       monitor=record)
    if replaced is not None and registry_change.action == Action.CREATE:
        registry_change = replace(registry_change, reason=(
            f"new cron replacing rule {replaced.current.name} (tagged as ours): written first, "
            "so that dispatch knows the cron when the rule fires through it"))
    if taking_over and reg is None:
        # Adopting a live schedule (or the rule the cron replaces): the registry item first,
        # so that dispatch knows the cron before a schedule's target becomes the dispatch
        # topic (no run lost between).
        return [replace(c, adopting=True) for c in (registry_change, *changes)]
    changes.append(registry_change)
    return changes


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested dicts as dotted keys; lists of ``{"name": ...}`` dicts keyed by name."""
    if isinstance(value, list) and value and all(
            isinstance(v, dict) and "name" in v for v in value):
        value = {v["name"]: (v["value"] if set(v) == {"name", "value"}
                             else {k: x for k, x in v.items() if k != "name"}) for v in value}
    if isinstance(value, dict) and value:
        out: dict[str, object] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _record_fields(item: RegistryItem) -> dict[str, object]:
    """The compared fields of a registry item besides its spec and overrides."""
    fields = {"file": item.file, "schedule_backend": item.schedule_backend,
              "schedule_arn": item.schedule_arn,
              "task_definition_arn": item.task_definition_arn or KNOWN_AFTER_APPLY}
    if item.monitor_provider:
        fields["monitor"] = f"{item.monitor_provider} {item.monitor_id or KNOWN_AFTER_APPLY}"
    return fields


def registry_fields(item: RegistryItem, include_overrides: bool) -> dict[str, object]:
    """The compared fields of a registry item, flattened for a field diff."""
    fields = flatten(item.spec.to_dict(), "spec")
    fields.update(_record_fields(item))
    if include_overrides:
        fields.update(flatten(item.overrides, "overrides"))
    return fields


def _registry_change(dc: DesiredCron, observed: Observed, commit, adopting: bool,
                     monitor: MonitorRecord | None = None) -> Change:
    name = dc.spec.name
    monitor = monitor or MonitorRecord()
    reg = observed.registry.get(name)
    live_td = observed.task_definitions.get(dc.task_definition.family)
    # the same spec object (the known state shares the loaded specs): its hash is the one
    # recorded with it, not computed again (10,000 crons: half a second a pass)
    same_spec = reg is not None and reg.spec is dc.spec
    item = RegistryItem(
        name=name, spec=dc.spec, spec_hash=reg.spec_hash if same_spec else dc.spec.spec_hash(),
        commit=commit,
        file=dc.spec.file, schedule_backend=dc.schedule.backend, schedule_arn=dc.schedule.arn,
        task_definition_arn=live_td.arn if live_td else None,
        task_definition_hash=dc.task_definition.td_hash, overrides=dc.overrides,
        monitor_provider=monitor.provider, monitor_id=monitor.id,
        monitor_ping_url=monitor.ping_url)
    if reg is None:
        reason = ADOPTING if adopting else "new cron"
        return Change(name, Resource.REGISTRY, Action.CREATE, reason,
                      _diff({}, registry_fields(item, False)), desired=item)
    spec_same = same_spec or reg.spec.to_dict() == item.spec.to_dict()
    if spec_same and _record_fields(reg) == _record_fields(item) \
            and reg.overrides == item.overrides:
        # what the field diff below would find empty, without flattening both items
        return Change(name, Resource.REGISTRY, Action.NO_OP, "up to date", desired=item,
                      observed=reg)
    diff = _diff(registry_fields(reg, spec_same), registry_fields(item, spec_same))
    if not diff:
        return Change(name, Resource.REGISTRY, Action.NO_OP, "up to date", desired=item, observed=reg)
    if not spec_same:
        reason = "spec changed"
    elif reg.schedule_backend != item.schedule_backend:
        reason = f"backend switch {reg.schedule_backend} -> {item.schedule_backend}"
    elif reg.task_definition_arn != item.task_definition_arn:
        reason = "task definition replaced"
    elif reg.file != item.file:
        reason = "file moved"
    elif (reg.monitor_provider, reg.monitor_id) != (item.monitor_provider, item.monitor_id):
        reason = "monitor changed"
    else:
        reason = "overrides changed"
    return Change(name, Resource.REGISTRY, Action.UPDATE, reason, diff, desired=item, observed=reg)


def _known_crons(observed: Observed, ns: str) -> set[str]:
    """Crons with anything of ours live: registry items and schedules tagged as ours."""
    names = set(observed.registry)
    for live in (*observed.rules.values(), *observed.schedules.values()):
        if is_ours(live.tags, ns) and live.cron_tag:
            names.add(live.cron_tag)
    return names


def _removal_changes(name: str, observed: Observed, ns: str,
                     monitors: MonitorPlanner) -> list[Change]:
    reg = observed.registry.get(name)
    reason = "file removed" if reg else "orphan: tagged as ours, no cron file"
    changes = []
    for coll, resource_name in ((observed.rules, rule_name(ns, name)),
                                (observed.schedules, name)):
        live = coll.get(resource_name)
        if live is not None and live.owned_as(name, ns, reg):
            changes.append(Change(name, Resource.SCHEDULE, Action.DELETE, reason,
                                  _diff(live.current.fields(), {}), observed=live))
    changes.extend(monitors.for_removed(name, reg, reason))
    if reg is not None:
        changes.append(Change(name, Resource.REGISTRY, Action.DELETE, reason,
                              _diff(registry_fields(reg, False), {}), observed=reg))
    return changes


def _task_definition_changes(td_users: dict[str, list[DesiredCron]], kept: set[str],
                             observed: Observed, ns: str) -> tuple[list[Change], list[Change]]:
    referenced = set(td_users)
    for name in kept:
        reg = observed.registry.get(name)
        if reg is not None and reg.task_definition_hash:
            referenced.add(family_of(ns, reg.task_definition_hash))
    drifted = {reg.task_definition_hash for reg in observed.registry.values()}
    creates = []
    for family, users in sorted(td_users.items()):
        wanted = users[0].task_definition
        crons = ", ".join(dc.spec.name for dc in users)
        if family in observed.task_definitions:
            creates.append(Change(family, Resource.TASK_DEFINITION, Action.NO_OP, f"used by {crons}",
                                  desired=wanted, observed=observed.task_definitions[family]))
            continue
        reason = ("drift: task definition deregistered outside cronctl"
                  if wanted.td_hash in drifted else f"new task definition for {crons}")
        creates.append(Change(family, Resource.TASK_DEFINITION, Action.CREATE, reason,
                              _diff({}, {"image": users[0].spec.container.image,
                                         "used_by": crons}), desired=wanted))
    deletes = []
    for family, live in sorted(observed.task_definitions.items()):
        if family not in referenced and (is_ours(live.tags, ns) or not live.deep):
            deletes.append(Change(family, Resource.TASK_DEFINITION, Action.DELETE,
                                  "no cron uses it any more",
                                  (("arn", live.arn, None),), observed=live))
    return creates, deletes

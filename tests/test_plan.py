"""make_plan as plain tables: desired + observed in, changes and errors out (no AWS)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from reconciler.core.desired import CRON_TAG, Deployment, ours_tags
from reconciler.core.plan.model import Observed, ObservedSchedule, ObservedTaskDefinition
from reconciler.core.plan.planner import ADOPTING, desired_state, make_plan
from reconciler.core.registry_model import RegistryItem
from reconciler.core.spec import ContainerSpec, CronSpec

DEP = Deployment(namespace="test", region="us-east-1", account="123456789012",
                 backend="rules", sidecar_image="busybox", log_group="/cronctl/test",
                 execution_role_arn="arn:aws:iam::123456789012:role/test-task-execution")
SETTINGS = SimpleNamespace(namespace="test", max_deletes=None, allow_mass_delete=False)


def spec(name: str, schedule: str = "cron(0 5 * * ? *)", image: str = "perl", **kw) -> CronSpec:
    return CronSpec(name=name, file=f"crons.d/{name}.yaml", schedule=schedule,
                    container=ContainerSpec(image=image), **kw)


def in_sync(*specs: CronSpec, dep: Deployment = DEP) -> Observed:
    """What AWS holds after a clean apply of ``specs``."""
    state = desired_state(specs, dep, commit="c1")
    rules, schedules, tds, registry = {}, {}, {}, {}
    for dc in state.crons:
        tags = ours_tags("test", **{CRON_TAG: dc.spec.name})
        live = ObservedSchedule(arn=dc.schedule.arn, current=dc.schedule, tags=tags)
        (rules if dep.backend == "rules" else schedules)[dc.schedule.name] = live
        td = dc.task_definition
        tds[td.family] = ObservedTaskDefinition(
            td.family, f"arn:aws:ecs:us-east-1:123456789012:task-definition/{td.family}:1",
            ours_tags("test"))
        registry[dc.spec.name] = RegistryItem(
            name=dc.spec.name, spec=dc.spec, spec_hash=dc.spec.spec_hash(),
            commit="c1", file=dc.spec.file, schedule_backend=dep.backend,
            schedule_arn=dc.schedule.arn, task_definition_arn=tds[td.family].arn,
            task_definition_hash=td.td_hash, overrides=dc.overrides)
    return Observed(registry=registry, rules=rules, schedules=schedules, task_definitions=tds)


def plan(specs, observed, *, held=frozenset(), dep=DEP, settings=SETTINGS):
    return make_plan(desired_state(tuple(specs), dep, commit="c2", held_back=held),
                     observed, settings)


def summary(p) -> list[tuple[str, str, str, str]]:
    return [(c.cron, c.resource, c.action, c.reason) for c in p.pending]


def with_rule(observed: Observed, name: str, **current) -> Observed:
    live = observed.rules[name]
    rules = {**observed.rules, name: replace(live, current=replace(live.current, **current))}
    return replace(observed, rules=rules)


def test_new_crons_create_schedule_registry_and_one_shared_task_definition():
    p = plan([spec("a"), spec("b")], Observed())
    rows = summary(p)
    assert [r[1:3] for r in rows] == [("task-definition", "create")] + [
        ("schedule", "create"), ("registry", "create")] * 2
    assert rows[1] == ("a", "schedule", "create", "new cron")
    assert ("expression", None, "cron(0 5 * * ? *)") in p.pending[1].diff
    assert p.errors == ()


def test_in_sync_is_all_no_op():
    specs = [spec("a"), spec("b", image="busybox")]
    p = plan(specs, in_sync(*specs))
    assert p.pending == () and not p.has_changes and p.errors == ()


@pytest.mark.parametrize("edit, expected", [
    (dict(state="DISABLED"), "drift: rule disabled outside cronctl"),
    (dict(target_arn=None, input=None, input_paths=None), "drift: target removed"),
    (dict(expression="rate(1 day)"), "drift: rule edited outside cronctl"),
])
def test_drift_on_a_live_rule_is_an_update_with_its_reason(edit, expected):
    observed = with_rule(in_sync(spec("a")), "test-a", **edit)
    assert summary(plan([spec("a")], observed)) == [("a", "schedule", "update", expected)]


def test_deleted_rule_and_deregistered_definition_are_recreated_as_drift():
    observed = in_sync(spec("a"))
    observed = replace(observed, rules={}, task_definitions={})
    rows = summary(plan([spec("a")], observed))
    assert rows == [
        (rows[0][0], "task-definition", "create",
         "drift: task definition deregistered outside cronctl"),
        ("a", "schedule", "create", "drift: rule deleted outside cronctl"),
        ("a", "registry", "update", "task definition replaced"),
    ]


def test_schedule_change_in_the_file_is_an_update():
    p = plan([spec("a", schedule="rate(5 minutes)")], in_sync(spec("a")))
    assert summary(p) == [("a", "schedule", "update", "schedule changed"),
                          ("a", "registry", "update", "spec changed")]
    assert ("expression", "cron(0 5 * * ? *)", "rate(5 minutes)") in p.pending[0].diff


def test_moved_file_updates_the_description_and_the_registry_as_a_move():
    moved = replace(spec("a"), file="crons.d/team/a.yaml")
    p = plan([moved], in_sync(spec("a")))
    assert summary(p) == [("a", "schedule", "update", "file moved"),
                          ("a", "registry", "update", "file moved")]
    assert p.pending[0].diff == (("description", "cronctl test/a (crons.d/a.yaml)",
                                  "cronctl test/a (crons.d/team/a.yaml)"),)


def test_removed_file_deletes_schedule_then_registry_then_unused_definition():
    rows = summary(plan([spec("a")], in_sync(spec("a"), spec("b", image="busybox"))))
    assert [r[:3] for r in rows] == [("b", "schedule", "delete"), ("b", "registry", "delete"),
                                     (rows[2][0], "task-definition", "delete")]
    assert rows[0][3] == "file removed" and rows[2][0].startswith("test-td-")


def test_held_back_cron_keeps_everything_and_is_reported():
    observed = in_sync(spec("a", image="busybox"), spec("b"))
    p = plan([spec("b")], observed, held=frozenset({"a"}))
    assert p.pending == ()
    assert [(e.cron, e.file, e.message) for e in p.errors] == [
        ("a", "crons.d/a.yaml", "file invalid: kept as is")]


def test_held_back_cron_error_names_its_file_and_says_why():
    observed = in_sync(spec("b"))
    desired = desired_state((spec("b"),), DEP, commit="c2", held_back=frozenset({"new"}),
                            held_files={"new": "crons.d/team/new.yaml"},
                            held_reasons={"new": ("crons.d/team/new.yaml:2:1: bogus: unknown",
                                                  "crons.d/team/new.yaml:3:1: x: bad")})
    p = make_plan(desired, observed, SETTINGS)
    assert p.pending == ()
    assert [(e.cron, e.file, e.message) for e in p.errors] == [
        ("new", "crons.d/team/new.yaml", "file invalid: kept as is; "
         "crons.d/team/new.yaml:2:1: bogus: unknown; crons.d/team/new.yaml:3:1: x: bad")]


@pytest.mark.parametrize("settings, deletes", [
    (SETTINGS, 0),
    (SimpleNamespace(namespace="test", max_deletes=None, allow_mass_delete=True), 5),
    (SimpleNamespace(namespace="test", max_deletes=5, allow_mass_delete=False), 5),
    (SimpleNamespace(namespace="test", max_deletes=4, allow_mass_delete=False), 0),
])
def test_mass_delete_guard(settings, deletes):
    specs = [spec(f"c{i}") for i in range(6)]
    p = plan(specs[:1], in_sync(*specs), settings=settings)
    deleted = {c.cron for c in p.pending if c.resource == "registry" and c.action == "delete"}
    assert len(deleted) == deletes
    if deletes == 0:
        (error,) = p.errors
        assert "refusing to delete 5 crons" in error.message
        assert "--allow-mass-delete" in error.message
        assert not [c for c in p.pending if c.action == "delete"]


def test_colliding_rule_not_ours_is_an_error_for_that_cron_only():
    foreign = ObservedSchedule(arn="arn:aws:events:us-east-1:123456789012:rule/test-a",
                               current=replace(in_sync(spec("a")).rules["test-a"].current,
                                               expression="rate(1 hour)"),
                               tags={"team": "other"})
    p = plan([spec("a"), spec("b")], Observed(rules={"test-a": foreign}))
    assert {c.cron for c in p.pending if c.resource != "task-definition"} == {"b"}
    (error,) = p.errors
    assert error.cron == "a" and "not managed by cronctl" in error.message


def test_tagged_rule_missing_from_registry_is_adopted_not_duplicated():
    observed = replace(in_sync(spec("a")), registry={})
    rows = summary(plan([spec("a")], observed))
    assert rows == [("a", "registry", "create", ADOPTING)]


def test_tagged_orphan_without_file_or_registry_is_deleted():
    observed = replace(in_sync(spec("a"), spec("b")), registry={})
    rows = summary(plan([spec("a")], observed))
    assert ("b", "schedule", "delete", "orphan: tagged as ours, no cron file") in rows
    assert ("a", "registry", "create", ADOPTING) in rows


def test_backend_switch_creates_new_schedule_before_deleting_the_rule():
    observed = in_sync(spec("a"))
    rows = summary(plan([spec("a")], observed, dep=replace(DEP, backend="scheduler")))
    assert rows == [("a", "schedule", "create", "backend switch rules -> scheduler"),
                    ("a", "schedule", "delete", "backend switch rules -> scheduler"),
                    ("a", "registry", "update", "backend switch rules -> scheduler")]


def test_non_utc_timezone_on_rules_is_an_error_and_changes_nothing():
    p = plan([spec("a", timezone="Europe/Berlin")], in_sync(spec("a")))
    assert p.pending == ()
    (error,) = p.errors
    assert error.message.startswith("timezone Europe/Berlin needs --scheduler scheduler")


def test_task_definition_not_tagged_ours_is_never_deleted():
    observed = in_sync(spec("a"))
    (family, live), = observed.task_definitions.items()
    observed = replace(observed, registry={}, rules={},
                       task_definitions={family: replace(live, tags={})})
    p = plan([], observed)
    assert p.pending == ()


# --- rules of AWS the emulator does not enforce ---------------------------------------------

NO_ROLE = replace(DEP, execution_role_arn=None)


def test_fargate_without_an_execution_role_is_one_error_and_changes_nothing():
    p = plan([spec("alpha"), spec("beta")], Observed(), dep=NO_ROLE)
    assert p.changes == ()
    [error] = p.errors
    assert "awslogs log driver" in error.message and "Fargate" in error.message
    assert "--execution-role-arn / CRONCTL_EXECUTION_ROLE_ARN" in error.message
    assert "cronctl bootstrap --namespace test" in error.message


def test_secrets_need_an_execution_role_on_ec2_too_awslogs_does_not():
    ec2 = replace(NO_ROLE, fargate=False)
    secret = CronSpec(name="vault", file="crons.d/vault.yaml", schedule="rate(1 hour)",
                      container=ContainerSpec(image="perl", secrets=(("DB", "arn:aws:ssm:x"),)))
    p = plan([spec("alpha"), secret], Observed(), dep=ec2)
    assert [(e.cron, "--execution-role-arn" in e.message) for e in p.errors] == [("vault", True)]
    assert {c.cron for c in p.pending if c.resource != "task-definition"} == {"alpha"}


def test_rules_quota_warns_at_80_percent_and_refuses_new_rules_past_it():
    crons = [spec(f"c{i}") for i in range(3)]
    near = plan(crons, Observed(), dep=replace(DEP, rules_quota=5))  # 3 crons + events rule
    assert near.errors == () and len(near.warnings) == 1
    assert "4 of the 5 rules" in near.warnings[0] and "--scheduler scheduler" in near.warnings[0]

    live = in_sync(*crons[:2])
    past = plan(crons, live, dep=replace(DEP, rules_quota=3))
    [error] = past.errors
    assert "needs 4 rules" in error.message and "quota of 3" in error.message
    assert "--rules-quota / CRONCTL_RULES_QUOTA" in error.message
    assert past.pending == ()  # c0, c1 in sync; c2 (a new rule) kept as it is
    assert plan(crons, Observed(), dep=replace(DEP, rules_quota=300)).warnings == ()


def test_the_default_scheduler_role_is_named_in_a_warning():
    sched = replace(DEP, backend="scheduler")
    [warning] = plan([spec("alpha")], Observed(), dep=sched).warnings
    assert "arn:aws:iam::123456789012:role/test-scheduler" in warning
    assert "--scheduler-role-arn / CRONCTL_SCHEDULER_ROLE_ARN" in warning
    recorded = replace(sched, scheduler_role_arn="arn:aws:iam::123456789012:role/mine")
    assert plan([spec("alpha")], Observed(), dep=recorded).warnings == ()


STACK_ROLE = "arn:aws:iam::123456789012:role/crons-TaskExecutionRole-AbC123"  # auto-named


def secret_spec(name: str, *secrets: tuple[str, str]) -> CronSpec:
    return replace(spec(name), container=ContainerSpec(image="perl", secrets=tuple(secrets)))


@pytest.mark.parametrize("value_from, outside", [
    # SSM parameter names: read in the task's region and account
    ("/test/db", False),
    ("/test/team/db", False),
    ("/shared/db", True),
    ("db", True),                      # ARN parameter/db
    ("test/db", True),                 # no SSM parameter: a path must start with "/"
    ("/testing/db", True),
    ("/Test/db", True),                # IAM matches ARNs case-sensitively
    # SSM parameter ARNs: "/test/db" is parameter/test/db
    ("arn:aws:ssm:us-east-1:123456789012:parameter/test/db", False),
    ("arn:aws:ssm:us-east-1:123456789012:parameter/shared/db", True),
    ("arn:aws:ssm:us-east-1:123456789012:parameter/db", True),
    ("arn:aws:ssm:us-east-1:123456789012:parameter//test/db", True),
    ("arn:aws:ssm:eu-west-1:123456789012:parameter/test/db", True),     # another region
    ("arn:aws:ssm:us-east-1:210987654321:parameter/test/db", True),     # another account
    ("arn:aws-cn:ssm:us-east-1:123456789012:parameter/test/db", True),  # another partition
    # Secrets Manager ARNs: the stack allows secret:/test/*
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:/test/db-AbCdEf", False),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:/test/db", False),  # partial ARN
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:/test/db-AbCdEf:password:AWSCURRENT:",
     False),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:/test/db-AbCdEf:password::"
     "0123abcd-0123-0123-0123-0123456789ab", False),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:test/db-AbCdEf", True),  # no "/"
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf:test/:/test/:", True),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:/shared/db-AbCdEf", True),
    ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:/test/db-AbCdEf", True),
    ("arn:aws:secretsmanager:us-east-1:210987654321:secret:/test/db-AbCdEf", True),
])
def test_a_secret_outside_the_namespace_is_a_warning_under_a_role_not_bootstraps(
        value_from, outside):
    crons = [secret_spec("vault", ("DB", value_from))]
    stack = replace(DEP, execution_role_arn=STACK_ROLE)
    warnings = plan(crons, in_sync(*crons, dep=stack), dep=stack).warnings
    assert len(warnings) == (1 if outside else 0)
    if outside:
        assert warnings[0].startswith(f"cron vault: container.secrets DB ({value_from}) is "
                                      "outside /test/")
        assert warnings[0].endswith(f"move it under /test/ or let {STACK_ROLE} read it")
    # bootstrap's role reads every secret of the account in the region: never a warning
    assert plan(crons, in_sync(*crons), dep=DEP).warnings == ()


def test_the_secrets_warning_is_one_line_per_cron_and_changes_nothing():
    crons = [secret_spec("a", ("API", "/shared/api"), ("DB", "/test/db"), ("KEY", "key")),
             secret_spec("b", ("DB", "/test/db")), spec("c")]
    stack = replace(DEP, execution_role_arn=STACK_ROLE)
    p = plan(crons, in_sync(*crons, dep=stack), dep=stack)
    assert p.warnings == (
        "cron a: container.secrets API (/shared/api), KEY (key) are outside /test/, which the "
        f"task execution role {STACK_ROLE} may not read: it is not bootstrap's "
        "test-task-execution, and the CloudFormation stack's role reads only SSM parameters "
        "and Secrets Manager secrets under /test/ of this account and region (a task it cannot "
        "read them for fails to start: ResourceInitializationError); move them under /test/ or "
        f"let {STACK_ROLE} read them",)
    assert p.errors == () and p.pending == ()
    # no secrets at all: nothing to warn of, whatever the role
    assert plan([spec("c")], in_sync(spec("c"), dep=stack), dep=stack).warnings == ()

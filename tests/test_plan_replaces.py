"""make_plan for a cron that ``replaces`` a live rule not named as cronctl names it: the rule
handed over to dispatch, the cron's own schedule created, then the rule deleted, in that
order, its registry item first; or an error of that cron only (no AWS)."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.desired import CRON_TAG, RULE_INPUT_PATHS, DesiredSchedule, ours_tags
from reconciler.core.plan.dependencies import execution_order
from reconciler.core.plan.model import Observed, ObservedSchedule
from reconciler.core.spec import Replaces
from tests.test_plan import DEP, in_sync, plan, spec

TOPIC = "arn:aws:sns:us-east-1:123456789012:test-dispatch"
ECS = "arn:aws:ecs:us-east-1:123456789012:cluster/billing"


def live_rule(name: str = "legacy-a", *, cron: str | None = "a", ours: bool = True,
              expression: str = "cron(0 5 * * ? *)", state: str = "ENABLED",
              dispatch: bool = False) -> ObservedSchedule:
    """A rule as observe reads it: ``target_arn`` None while it has no dispatch target."""
    current = DesiredSchedule(
        backend="rules", name=name, arn=f"arn:aws:events:us-east-1:123456789012:rule/{name}",
        group=None, expression=expression, timezone="UTC", state=state,
        description="made by hand", target_arn=TOPIC if dispatch else None,
        input=('{"cron": "a", "scheduled_at": "<time>"}' if dispatch else None),
        input_paths=RULE_INPUT_PATHS if dispatch else None)
    tags = ours_tags("test", **({CRON_TAG: cron} if cron else {})) if ours else {}
    return ObservedSchedule(arn=current.arn, current=current, tags=tags)


def replacing(rule: str = "legacy-a", **kw):
    return spec("a", replaces=Replaces(rule=rule), **kw)


def observed_with(*rules: ObservedSchedule, base: Observed | None = None) -> Observed:
    return replace(base or Observed(), replaced={r.current.name: r for r in rules})


def mine(p, cron: str = "a"):
    """(resource, action, the name of what it changes) of the cron's pending changes."""
    return [(c.resource, c.action, c.desired.name if c.desired else c.observed.current.name)
            for c in p.pending if c.cron == cron]


def test_the_rule_is_handed_over_then_the_new_schedule_created_then_the_rule_deleted():
    old = live_rule()
    p = plan([replacing()], observed_with(old))
    assert p.errors == ()
    assert mine(p) == [("registry", "create", "a"), ("schedule", "update", "legacy-a"),
                       ("schedule", "create", "test-a"), ("schedule", "delete", "legacy-a")]
    registry, hand_over, create, delete = [c for c in p.pending if c.cron == "a"]
    assert all(c.adopting for c in (registry, hand_over, create, delete))
    assert registry.reason.startswith("new cron replacing rule legacy-a (tagged as ours)")
    # the hand-over keeps the rule's own expression, state and description
    wanted = hand_over.desired
    assert (wanted.name, wanted.expression, wanted.state, wanted.description) == (
        "legacy-a", "cron(0 5 * * ? *)", "ENABLED", "made by hand")
    assert (wanted.target_arn, wanted.input) == (TOPIC, '{"cron": "a", "scheduled_at": "<time>"}')
    assert hand_over.observed is old and delete.observed is old
    assert dict((k, (b, a)) for k, b, a in hand_over.diff)["target"] == (None, TOPIC)
    assert "legacy-a" in hand_over.reason and "test-a" in hand_over.reason
    assert create.reason == "replaces rule legacy-a"
    # registry create -> hand-over -> create -> delete
    assert hand_over.depends_on == (registry.id,)
    assert set(create.depends_on) == {registry.id, hand_over.id}
    assert set(delete.depends_on) == {registry.id, hand_over.id, create.id}
    assert len({c.id for c in p.changes}) == len(p.changes)
    order = [c.id for c in execution_order(p.changes)]
    assert [i for i in order if i.startswith("a/")] == [
        registry.id, hand_over.id, create.id, delete.id]


def test_on_the_scheduler_backend_the_same_order_with_a_scheduler_schedule():
    dep = replace(DEP, backend="scheduler")
    p = plan([replacing()], observed_with(live_rule()), dep=dep)
    assert p.errors == ()
    assert mine(p) == [("registry", "create", "a"), ("schedule", "update", "legacy-a"),
                       ("schedule", "create", "a"), ("schedule", "delete", "legacy-a")]
    registry, hand_over, create, delete = [c for c in p.pending if c.cron == "a"]
    assert create.desired.backend == "scheduler" and hand_over.desired.backend == "rules"
    assert hand_over.depends_on == (registry.id,)
    assert hand_over.id in create.depends_on and create.id in delete.depends_on


def test_replacing_the_old_backends_own_rule_deletes_it_once():
    """Scheduler backend, ``replaces`` naming ``<ns>-<cron>``: the backend switch's delete
    and the replacement's are one change."""
    dep = replace(DEP, backend="scheduler")
    old = live_rule("test-a")
    p = plan([replacing("test-a")], observed_with(old, base=Observed(rules={"test-a": old})),
             dep=dep)
    assert mine(p) == [("registry", "create", "a"), ("schedule", "update", "test-a"),
                       ("schedule", "create", "a"), ("schedule", "delete", "test-a")]


def test_a_rule_not_tagged_ours_is_an_error_of_that_cron_and_nothing_of_it_changes():
    p = plan([replacing(), spec("b")], observed_with(live_rule(ours=False)))
    assert mine(p) == [] and mine(p, "b") == [("schedule", "create", "test-b"),
                                              ("registry", "create", "b")]
    [error] = p.errors
    assert (error.cron, error.file) == ("a", "crons.d/a.yaml")
    assert error.message.startswith(
        "replaces.rule: rule legacy-a is not tagged as cronctl's for cron a in namespace test")
    assert "`cronctl import aws --rules-prefix legacy- --adopt --namespace test`" \
        in error.message
    assert ("`aws events tag-resource --resource-arn arn:aws:events:us-east-1:123456789012:"
            "rule/legacy-a --tags Key=cronctl:cron,Value=a Key=cronctl:namespace,Value=test "
            "Key=managed-by,Value=cronctl`") in error.message


def test_a_rule_tagged_for_another_cron_is_an_error_naming_that_cron():
    p = plan([replacing()], observed_with(live_rule(cron="b")))
    [error] = p.errors
    assert "(it is tagged for cron b)" in error.message and mine(p) == []


def test_an_event_pattern_rule_is_not_replaced():
    p = plan([replacing()], observed_with(live_rule(expression="")))
    [error] = p.errors
    assert "rule legacy-a has no schedule expression" in error.message and mine(p) == []


def test_a_rule_already_gone_needs_nothing():
    p = plan([replacing()], Observed())
    assert p.errors == ()
    assert [(c.resource, c.action, c.reason) for c in p.pending if c.cron == "a"] == [
        ("schedule", "create", "new cron"), ("registry", "create", "new cron")]
    # and once migrated: in sync, nothing to do
    assert plan([replacing()], in_sync(replacing())).has_changes is False


def test_a_rule_handed_over_by_an_interrupted_pass_is_not_handed_over_again():
    """The last pass wrote the registry item and handed the rule over, then failed: this one
    creates the schedule and deletes the rule (the registry item after both)."""
    base = in_sync(replacing())
    base = replace(base, rules={})
    p = plan([replacing()], observed_with(live_rule(dispatch=True), base=base))
    assert mine(p) == [("schedule", "create", "test-a"), ("schedule", "delete", "legacy-a")]
    create, delete = p.pending
    assert create.id in delete.depends_on and not create.adopting
    registry = next(c for c in p.changes if c.cron == "a" and c.resource == "registry")
    assert set(registry.depends_on) == {create.id, delete.id}


def test_replaces_naming_the_crons_own_rule_is_an_adoption_in_place():
    observed = replace(in_sync(replacing("test-a")), registry={})
    p = plan([replacing("test-a")], observed_with(observed.rules["test-a"], base=observed))
    assert p.errors == ()
    assert mine(p) == [("registry", "create", "a")]  # the rule is already as wanted
    p = plan([replacing("test-a", schedule="cron(0 6 * * ? *)")],
             observed_with(observed.rules["test-a"], base=observed))
    assert mine(p) == [("registry", "create", "a"), ("schedule", "update", "test-a")]


def test_a_disabled_rule_stays_disabled_while_handed_over():
    p = plan([replacing(suspend=True)], observed_with(live_rule(state="DISABLED")))
    hand_over = next(c for c in p.pending if c.action == "update")
    assert hand_over.desired.state == "DISABLED"
    assert "state" not in {k for k, _, _ in hand_over.diff}

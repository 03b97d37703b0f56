"""The dependencies between a plan's changes, as tables: each plan's pending changes by id with
what they wait for (one function, one table of rules), and the order apply runs them in."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.core.desired import family_of
from reconciler.core.plan.dependencies import execution_order, with_dependencies
from reconciler.core.plan.model import Change, Observed
from reconciler.core.plan.planner import desired_state
from tests.test_plan import DEP, in_sync, plan, spec


def family(image: str) -> str:
    """The shared task definition family of a cron on ``image``."""
    state = desired_state((spec("x", image=image),), DEP, commit=None)
    return state.crons[0].task_definition.family


def both_backends(observed: Observed) -> Observed:
    """``observed`` with each rule also present as a Scheduler schedule of ours."""
    schedules = {live.cron_tag: replace(live, arn=live.arn.replace(":rule/", ":schedule/"),
                                        current=replace(live.current, backend="scheduler"))
                 for live in observed.rules.values()}
    return replace(observed, schedules=schedules)


def _cases():
    perl, busybox, python = family("perl"), family("busybox"), family("python")
    a_b_perl = in_sync(spec("a"), spec("b"))
    return {
        "new crons share one task definition": (
            [spec("a"), spec("b")], Observed(), DEP, {
                f"{perl}/task-definition/create": (),
                "a/schedule/create": (),
                "a/registry/create": ("a/schedule/create", f"{perl}/task-definition/create"),
                "b/schedule/create": (),
                "b/registry/create": ("b/schedule/create", f"{perl}/task-definition/create"),
            }),
        "in sync: nothing waits": ([spec("a"), spec("b")], a_b_perl, DEP, {}),
        "backend switch: old schedule after new, registry after both": (
            [spec("a")], in_sync(spec("a")), replace(DEP, backend="scheduler"), {
                "a/schedule/create": (),
                "a/schedule/delete": ("a/schedule/create",),
                "a/registry/update": ("a/schedule/create", "a/schedule/delete"),
            }),
        "removed cron: registry after schedule, its task definition after the registry": (
            [spec("a")], in_sync(spec("a"), spec("b", image="busybox")), DEP, {
                "b/schedule/delete": (),
                "b/registry/delete": ("b/schedule/delete",),
                f"{busybox}/task-definition/delete": ("b/registry/delete",),
            }),
        "every cron moves off a shared definition: its delete waits for each move": (
            [spec("a", image="python"), spec("b", image="python")], a_b_perl, DEP, {
                f"{python}/task-definition/create": (),
                "a/registry/update": (f"{python}/task-definition/create",),
                "b/registry/update": (f"{python}/task-definition/create",),
                f"{perl}/task-definition/delete": ("a/registry/update", "b/registry/update"),
            }),
        "one cron moves off, the other stays: nothing deleted": (
            [spec("a", image="python"), spec("b")], a_b_perl, DEP, {
                f"{python}/task-definition/create": (),
                "a/registry/update": (f"{python}/task-definition/create",),
            }),
        "schedule edited: the registry waits for it, not for the kept definition": (
            [spec("a", schedule="cron(0 6 * * ? *)")], in_sync(spec("a")), DEP, {
                "a/schedule/update": (),
                "a/registry/update": ("a/schedule/update",),
            }),
        "removed cron with a rule and a schedule: two ids, the registry waits for both": (
            [], both_backends(in_sync(spec("a"))), DEP, {
                "a/schedule/delete": (),
                "a/schedule/delete#2": (),
                "a/registry/delete": ("a/schedule/delete", "a/schedule/delete#2"),
                f"{perl}/task-definition/delete": ("a/registry/delete",),
            }),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_each_change_names_the_changes_it_waits_for(name):
    specs, observed, dep, expected = _cases()[name]
    p = plan(specs, observed, dep=dep)
    assert not p.errors, p.errors
    assert {c.id: c.depends_on for c in p.pending} == expected
    ids = [c.id for c in p.changes]
    assert len(ids) == len(set(ids))
    # the listed order is one the dependencies allow
    assert execution_order(p.changes) == p.changes


def test_the_order_follows_the_dependencies_whatever_the_listed_order():
    p = plan([spec("a", image="python")], in_sync(spec("a"), spec("b", image="busybox")))
    order = [c.id for c in execution_order(tuple(reversed(p.changes)))]
    for change in p.changes:
        for dep in change.depends_on:
            assert order.index(dep) < order.index(change.id), (dep, change.id, order)


def test_a_cycle_or_an_unknown_dependency_is_refused():
    a = Change("a", "schedule", "create", "new cron", id="a/1", depends_on=("a/2",))
    b = Change("a", "registry", "create", "new cron", id="a/2", depends_on=("a/1",))
    with pytest.raises(ValueError, match="cycle: a/1, a/2"):
        execution_order((a, b))
    with pytest.raises(ValueError, match="a/9, which is not planned"):
        execution_order((replace(a, depends_on=("a/9",)),))


def test_ids_are_stable_across_plans_of_the_same_input():
    first = plan([spec("a", image="python")], in_sync(spec("a")))
    again = with_dependencies([replace(c, id="", depends_on=()) for c in first.changes], "test")
    assert again == first.changes
    assert family_of("test", "0123456789abcdef0123") == "test-td-0123456789abcdef"


def test_an_adopted_schedule_waits_for_its_registry_item():
    """A live schedule tagged ours with no registry item: the registry item is written first,
    then the schedule is re-targeted (a fire in between finds the cron)."""
    observed = in_sync(spec("a"))
    observed = replace(observed, registry={})
    p = plan([spec("a", schedule="cron(5 * * * ? *)")], observed)
    by_resource = {c.resource: c for c in p.changes if c.cron == "a"}
    schedule, registry = by_resource["schedule"], by_resource["registry"]
    assert schedule.adopting and registry.adopting
    assert registry.id in schedule.depends_on
    assert schedule.id not in registry.depends_on
    order = [c.id for c in execution_order(p.changes)]
    assert order.index(registry.id) < order.index(schedule.id)

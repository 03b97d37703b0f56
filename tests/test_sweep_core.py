"""The pure parts of cheap passes at a new commit: the sweep's rotation and budget
(``core/plan/sweep.py``), the known state after an apply (``core/plan/known.after_apply``)
and the planner on shallow observations (seen in a list call only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.desired import CRON_TAG, ours_tags
from reconciler.core.plan.known import KnownState, after_apply, share_specs
from reconciler.core.plan.model import (
    Action,
    DeepCheck,
    Observed,
    Resource,
)
from reconciler.core.plan.render import deep_check_line, plan_to_dict
from reconciler.core.plan.sweep import (
    Rotation,
    SweepCursor,
    budget,
    budgets,
    oldest,
    round_warning,
    select,
)
from reconciler.core.quotas import DEFAULT_BUCKETS
from tests.test_plan import DEP, in_sync, plan, spec, summary

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T1, T2, T3 = (T0 + timedelta(hours=h) for h in (1, 2, 3))
NAMES = ["a", "b", "c", "d", "e"]


# --- the rotation ---------------------------------------------------------------------

ROTATIONS = [
    # (rotation before, count, now, chosen, rotation after)
    (Rotation(), 2, T0, {"a", "b"}, Rotation("b", T0, None)),
    (Rotation("b", T0, None), 2, T1, {"c", "d"}, Rotation("d", T0, None)),
    # the last name read: the cycle is complete, the next one starts now
    (Rotation("d", T0, None), 1, T1, {"e"}, Rotation("", T1, T0)),
    # a wrap inside the selection: the cycle ends, the rest comes from the start
    (Rotation("d", T0, None), 3, T2, {"e", "a", "b"}, Rotation("b", T2, T0)),
    # a name removed since: the rotation goes on from where it was
    (Rotation("bb", T0, None), 1, T1, {"c"}, Rotation("c", T0, None)),
    # everything at once
    (Rotation("c", T0, None), 9, T3, set(NAMES), Rotation("c", T3, T0)),
    (Rotation(), 0, T0, set(), Rotation("", T0, None)),
]


@pytest.mark.parametrize("before,count,now,chosen,after", ROTATIONS)
def test_the_rotation_reads_the_next_names_in_order_and_wraps(before, count, now, chosen,
                                                              after):
    got, rotation = select(NAMES, before, count, now)
    assert set(got) == chosen
    assert rotation == after


def test_a_whole_rotation_reads_every_name_once_and_reports_since_when():
    rotation, seen, moments = Rotation(), [], [T0 + timedelta(hours=h) for h in range(4)]
    for moment in moments[:3]:
        chosen, rotation = select(NAMES, rotation, 2, moment)
        seen.append(chosen)
    assert seen[:2] == [{"a", "b"}, {"c", "d"}] and seen[2] == {"e", "a"}  # all, then again
    assert rotation.since == T0                           # the first cycle began at T0
    assert oldest(SweepCursor({"rules": rotation})) == T0
    assert oldest(SweepCursor({"rules": Rotation("c", T0, None)})) is None
    assert select([], Rotation("c", T0, None), 3, T1) == (frozenset(), Rotation("", T1, T1))


BUDGETS = [
    # (total, interval, period, bucket, budget)
    (1000, 3600, 86400, "events", 42),               # every rule once a day
    (24, 3600, 86400, "events", 1),
    (1, 3600, 86400, "events", 1),
    (0, 3600, 86400, "events", 0),
    (100, 3600, 3600, "events", 100),                # a period of one sweep: all
    (10**6, 3600, 86400, "events", 36000),           # capped: 20% of 50/s over 1 h
    (10**6, 3600, 86400, "ecs-taskdef-read", 14400),      # 20% of 20/s over 1 h
]


@pytest.mark.parametrize("total,interval,period,bucket,expected", BUDGETS)
def test_the_budget_covers_the_period_within_a_fifth_of_the_quota(total, interval, period,
                                                                 bucket, expected):
    assert budget(total, interval, period, DEFAULT_BUCKETS[bucket]) == expected


def test_a_budget_capped_by_the_quota_is_a_warning():
    assert round_warning({"rules": 1000}, 3600, 86400) is None
    text = round_warning({"rules": 10**6}, 3600, 86400)
    assert "36000 of 1000000 rules per sweep" in text and "28 sweeps" in text
    assert budgets({"rules": 48, "schedules": 0, "task-definitions": 3}, 3600, 86400) == \
        {"rules": 2, "schedules": 0, "task-definitions": 1}


# --- the known state after an apply --------------------------------------------------------

def test_after_apply_observes_what_was_written_and_forgets_what_was_deleted():
    a, b = spec("a"), spec("b")
    before = in_sync(a, b)
    edited = spec("a", schedule="rate(7 minutes)")
    p = plan([edited], before)
    changes = {c.id: c for c in p.pending}
    assert set(changes) == {"a/schedule/update", "a/registry/update", "b/schedule/delete",
                            "b/registry/delete"}
    written = {"a": changes["a/registry/update"].desired, "b": None}
    after = after_apply(before, tuple(p.pending), written, {}, "test")
    assert after.rules["test-a"].current.expression == "rate(7 minutes)"
    assert after.rules["test-a"].deep and "test-b" not in after.rules
    assert after.registry["a"].spec_hash == edited.spec_hash() and "b" not in after.registry
    assert after.task_definitions == before.task_definitions
    # planned again against it: nothing to do
    assert plan([edited], after).pending == ()


def test_after_apply_records_a_new_task_definition_and_only_what_was_applied():
    p = plan([spec("a")], Observed())
    td = next(c for c in p.pending if c.resource == Resource.TASK_DEFINITION)
    arn = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{td.cron}:1"
    applied = tuple(c for c in p.pending if c.resource != Resource.REGISTRY)  # registry failed
    after = after_apply(Observed(), applied, {}, {td.cron: arn}, "test")
    assert after.task_definitions[td.cron].arn == arn and after.registry == {}
    assert after.rules["test-a"].tags == ours_tags("test", **{CRON_TAG: "a"})


@pytest.mark.parametrize("loaded, shared", [
    # equal specs (read back from the registry, parsed again): one object, the loaded one
    (lambda a: replace(a), True),
    # a spec that differs (an edit not applied yet): the item keeps what is stored
    (lambda a: replace(a, schedule="rate(7 minutes)"), False),
    # no loaded spec for the cron (deleted from the repo): the item keeps its own
    (lambda a: None, False),
    # an equal spec whose recorded hash is not its own (written by another version): not
    # shared, so the planner never takes that hash for the spec's
    ("stale-hash", False),
])
def test_the_known_state_shares_a_loaded_spec_only_when_equal(loaded, shared):
    stored = spec("a")
    observed = in_sync(stored, spec("b"))
    if loaded == "stale-hash":
        observed = replace(observed, registry={
            **observed.registry, "a": replace(observed.registry["a"], spec_hash="0" * 64)})
        loaded = lambda a: replace(a)  # noqa: E731
    mine = loaded(stored)
    after = share_specs(observed, [s for s in (mine, spec("b")) if s is not None])
    assert (after.registry["a"].spec is mine) is shared
    assert after.registry["a"].spec == (mine if shared else stored)
    assert after.registry["b"].spec == spec("b")
    assert after.rules == observed.rules and after.task_definitions == observed.task_definitions
    assert plan([stored, spec("b")], after).pending == ()


def test_the_known_state_holds_for_its_lease_generation_and_settings_version_only():
    known = KnownState(Observed(), T0, generation=4, settings_version=2)
    assert known.valid_for(4, 2)
    assert not known.valid_for(5, 2) and not known.valid_for(4, 3)
    assert not replace(known, generation=None).valid_for(None, 2)


# --- the planner on shallow observations ---------------------------------------------------

def shallow_rules(observed: Observed, **current) -> Observed:
    """Each rule as ListRules shows it: no target; ``current`` edits (drift)."""
    rules = {name: replace(live, deep=False, tags=None, current=replace(
        live.current, target_arn=None, input=None, input_paths=None, **current))
             for name, live in observed.rules.items()}
    return replace(observed, rules=rules)


def test_a_shallow_rule_shows_no_target_drift_but_its_listed_fields_drift():
    a = spec("a")
    assert plan([a], shallow_rules(in_sync(a))).pending == ()
    disabled = plan([a], shallow_rules(in_sync(a), state="DISABLED"))
    assert summary(disabled) == [("a", "schedule", "update",
                                  "drift: rule disabled outside cronctl")]
    assert disabled.pending[0].diff == (("state", "DISABLED", "ENABLED"),)
    # the change acts on the rule as seen: apply hands nothing over (target taken as ours)
    assert disabled.pending[0].observed.current.target_arn == DEP.topic_arn


def test_a_shallow_rule_of_a_changed_cron_is_updated():
    a = spec("a")
    p = plan([spec("a", schedule="rate(7 minutes)")], shallow_rules(in_sync(a)))
    assert ("a", "schedule", "update", "schedule changed") in summary(p)
    update = next(c for c in p.pending if c.resource == Resource.SCHEDULE)
    assert update.diff == (("expression", "cron(0 5 * * ? *)", "rate(7 minutes)"),)


SCHEDULER = replace(DEP, backend="scheduler")


def shallow_schedules(observed: Observed, **current) -> Observed:
    """Each schedule as ListSchedules shows it: state and target ARN only."""
    schedules = {name: replace(live, deep=False, tags=None, current=replace(
        live.current, expression="", timezone="UTC", description="", input="",
        role_arn=None, **current)) for name, live in observed.schedules.items()}
    return replace(observed, schedules=schedules)


def test_a_shallow_schedule_compares_state_and_target_and_takes_the_rest_as_written():
    a = spec("a")
    synced = in_sync(a, dep=SCHEDULER)
    assert plan([a], shallow_schedules(synced), dep=SCHEDULER).pending == ()
    disabled = plan([a], shallow_schedules(synced, state="DISABLED"), dep=SCHEDULER)
    assert [c.diff for c in disabled.pending] == [(("state", "DISABLED", "ENABLED"),)]
    retargeted = plan([a], shallow_schedules(synced, target_arn="arn:other"), dep=SCHEDULER)
    assert [c.diff for c in retargeted.pending] == [(("target", "arn:other",
                                                      SCHEDULER.topic_arn),)]
    # a changed spec: the diff says what changes, from the registry's spec
    edited = plan([spec("a", schedule="rate(7 minutes)")], shallow_schedules(synced),
                  dep=SCHEDULER)
    update = next(c for c in edited.pending if c.resource == Resource.SCHEDULE)
    assert update.action == Action.UPDATE and update.reason == "schedule changed"
    assert update.diff == (("expression", "cron(0 5 * * ? *)", "rate(7 minutes)"),)


def test_a_shallow_task_definition_is_ours_through_the_registry():
    a, b = spec("a"), spec("b", image="busybox")
    synced = in_sync(a, b)
    shallow = replace(synced, task_definitions={
        family: replace(td, tags={}, deep=False)
        for family, td in synced.task_definitions.items()})
    assert plan([a, b], shallow).pending == () and plan([a, b], shallow).errors == ()
    gone = plan([a], shallow)   # b removed: its task definition goes too
    assert ("task-definition", "delete") in [(c.resource, c.action) for c in gone.pending]
    # a family read one by one and not tagged ours stays an error of the cron using it
    foreign = replace(synced, task_definitions={
        f: replace(td, tags={}) for f, td in synced.task_definitions.items()})
    assert plan([a, b], foreign).errors


def test_the_plan_reports_what_was_not_read_one_by_one():
    a = spec("a")
    observed = replace(shallow_rules(in_sync(a)), coverage=DeepCheck(2, 40, T0))
    p = plan([a], observed)
    assert p.deep_check == DeepCheck(2, 40, T0)
    assert deep_check_line(p.deep_check) == (
        "Deep check: 2 resources read this pass, 40 not (each last read no earlier than "
        "2026-12-01T12:00:00Z; --full-check reads every one).")
    assert plan_to_dict(p)["deep_check"] == {"read": 2, "not_read": 40,
                                             "last_read_no_earlier_than":
                                                 "2026-12-01T12:00:00Z"}
    assert "not all read one by one yet" in deep_check_line(DeepCheck(1, 3, None))
    assert "deep_check" not in plan_to_dict(plan([a], in_sync(a)))


# --- the daemon's parsed files ---------------------------------------------------------------

def test_a_load_with_the_daemons_cache_parses_only_changed_files(monkeypatch):
    from reconciler.core.cronfile import loader
    from reconciler.core.cronfile.snapshot import Snapshot
    from tests.support.reconcile_env import cron_yaml

    files = {f"crons.d/job{i}.yaml": cron_yaml(f"cron({i} 5 * * ? *)").encode()
             for i in range(5)}
    parsed = []
    real = loader.parse
    monkeypatch.setattr(loader, "parse", lambda text: parsed.append(text) or real(text))
    from reconciler.core.cronfile.parse_cache import ParseCache

    cache = ParseCache()
    first = loader.load_snapshot(Snapshot(commit="a", files=files), cache=cache)
    assert len(parsed) == 5 and len(cache) == 5
    edited = {**files, "crons.d/job1.yaml": cron_yaml("rate(7 minutes)").encode()}
    del edited["crons.d/job4.yaml"]
    second = loader.load_snapshot(Snapshot(commit="b", files=edited), cache=cache)
    assert len(parsed) == 6 and len(cache) == 4          # only job1 again; job4 forgotten
    assert second == loader.load_snapshot(Snapshot(commit="b", files=edited))
    assert first != second

"""Plan rendering as tables: the summary counts exactly the changes listed, by action, in text
and JSON alike; errors are `Error:` blocks naming the file and the way out, never a class
name, and never under `No changes.`; secret-looking env values are masked."""

from __future__ import annotations

import json
import re

import pytest

from reconciler.core.plan.dependencies import with_dependencies
from reconciler.core.plan.model import Change, Plan, PlanError
from reconciler.core.plan.planner import HELD_BACK
from reconciler.core.plan.render import is_sensitive, plain_message, render_json, render_text
from reconciler.service.control.apply import ApplyError, Skipped

PLAN = Plan(commit="abc123", changes=with_dependencies((
    Change("a", "schedule", "create", "new cron",
           (("expression", None, "cron(0 5 * * ? *)"),)),
    Change("a", "registry", "update", "spec changed", (
        ("spec.container.env.DB_PASSWORD", "old-pw", "new-pw"),
        ("spec.container.env.LEVEL", "1", "2"),
        ("overrides.containerOverrides.main.environment.api_token", "t1", "t2"))),
    Change("b", "schedule", "delete", "file removed", (("state", "ENABLED", None),)),
    Change("c", "schedule", "no-op", "up to date"),
), "test"), errors=(PlanError("d", "crons.d/d.yaml", HELD_BACK),))


def _new(cron: str) -> tuple[Change, ...]:
    return (Change(cron, "schedule", "create", "new cron"),
            Change(cron, "registry", "create", "new cron"))


def _switch(cron: str) -> tuple[Change, ...]:
    """A backend switch: the new schedule, the old one deleted, the registry item updated."""
    reason = "backend switch rules -> scheduler"
    return (Change(cron, "schedule", "create", reason),
            Change(cron, "schedule", "delete", reason),
            Change(cron, "registry", "update", reason))


def _removed(cron: str) -> tuple[Change, ...]:
    return (Change(cron, "schedule", "delete", "file removed"),
            Change(cron, "registry", "delete", "file removed"))


HELD = PlanError("bad", "crons.d/bad.yaml",
                 f"{HELD_BACK}; crons.d/bad.yaml:1:11: schedule: cron() needs 6 fields, got 5")
FOREIGN = PlanError("ecs-events", "crons.d/ecs-events.yaml",
                    "rule test-ecs-events exists and is not managed by cronctl in namespace "
                    "test: left untouched")
ZONE = PlanError("berlin", "crons.d/berlin.yaml",
                 "timezone Europe/Berlin needs --scheduler scheduler (EventBridge rules "
                 "evaluate cron() in UTC only)")
MASS = PlanError("", "", "refusing to delete 5 crons (more than the limit of 3): a, b, c, d, e; "
                 "nothing deleted; run with --allow-mass-delete to delete them")

# name: (plan, the summary line, JSON summary counts (create, update, delete, errors))
CASES = {
    "nothing": (Plan(commit=None), "No changes.", (0, 0, 0, 0)),
    "only no-ops": (Plan(commit=None, changes=(Change("a", "schedule", "no-op", "up to date"),)),
                    "No changes.", (0, 0, 0, 0)),
    "creates": (Plan(commit=None, changes=(
        Change("test-td-1", "task-definition", "create", "new task definition for a, b"),
        *_new("a"), *_new("b"))),
        "Plan: 5 to create, 0 to update, 0 to delete.", (5, 0, 0, 0)),
    "four backend switches": (Plan(commit=None, changes=tuple(
        c for cron in "wxyz" for c in _switch(cron))),
        "Plan: 4 to create, 4 to update, 4 to delete.", (4, 4, 4, 0)),
    "updates and deletes": (Plan(commit=None, changes=(
        Change("a", "schedule", "update", "schedule changed"),
        Change("a", "registry", "update", "spec changed"),
        *_removed("b"),
        Change("test-td-2", "task-definition", "delete", "no cron uses it any more"))),
        "Plan: 0 to create, 2 to update, 3 to delete.", (0, 2, 3, 0)),
    "errors and no changes": (Plan(commit=None, errors=(HELD, FOREIGN)),
                              "Plan: 0 to create, 0 to update, 0 to delete. 2 errors.",
                              (0, 0, 0, 2)),
    "errors and changes": (Plan(commit=None, changes=_new("a"), errors=(ZONE,)),
                           "Plan: 2 to create, 0 to update, 0 to delete. 1 error.",
                           (2, 0, 0, 1)),
    "mass delete refused": (Plan(commit=None, errors=(MASS,)),
                            "Plan: 0 to create, 0 to update, 0 to delete. 1 error.",
                            (0, 0, 0, 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_summary_counts_exactly_the_changes_listed(name):
    plan, summary, _ = CASES[name]
    text = render_text(plan)
    assert text.splitlines()[-1] == summary
    listed = re.findall(r"^([+~-]) (create|update|delete) ", text, re.MULTILINE)
    counts = {action: sum(1 for _, a in listed if a == action)
              for action in ("create", "update", "delete")}
    if summary.startswith("Plan:"):
        assert summary.startswith(f"Plan: {counts['create']} to create, {counts['update']} to "
                                  f"update, {counts['delete']} to delete.")
    else:
        assert listed == []
    assert ("No changes." in text) == (not plan.errors and not plan.has_changes)


@pytest.mark.parametrize("name", list(CASES))
def test_json_carries_the_same_counts(name):
    plan, _, (create, update, delete, errors) = CASES[name]
    data = json.loads(render_json(plan))
    summary = data["summary"]
    assert (summary["create"], summary["update"], summary["delete"], summary["errors"]) == \
        (create, update, delete, errors)
    assert len(data["changes"]) == create + update + delete
    assert len(data["errors"]) == errors
    for action, count in (("create", create), ("update", update), ("delete", delete)):
        assert sum(r[action] for r in summary["by_resource"].values()) == count


def test_backend_switch_lists_and_counts_each_resource_change():
    text = render_text(CASES["four backend switches"][0])
    assert text.count("+ create schedule") == 4
    assert text.count("- delete schedule") == 4
    assert text.count("~ update registry") == 4


# error: (lines the block must contain, in order)
ERROR_BLOCKS = {
    "held back": (HELD, [
        "Error: crons.d/bad.yaml is invalid: cron bad is held back",
        "  crons.d/bad.yaml:1:11: schedule: cron() needs 6 fields, got 5",
        "  To fix: correct the file and commit it (`cronctl validate crons.d/bad.yaml` lists every "
        "error); until then its resources on AWS stay as they are."]),
    "not ours": (FOREIGN, [
        "Error: crons.d/ecs-events.yaml: rule test-ecs-events exists and is not managed by "
        "cronctl in namespace test: left untouched",
        "  To fix: cronctl never changes what it does not manage: rename the cron (`name:` or "
        "the file's name) and commit, or remove that resource yourself."]),
    "time zone": (ZONE, [
        "Error: crons.d/berlin.yaml: timezone Europe/Berlin needs --scheduler scheduler "
        "(EventBridge rules evaluate cron() in UTC only)",
        "  To fix: run with --scheduler scheduler (EventBridge Scheduler honours time zones), "
        "or use UTC in the file and commit it."]),
    "mass delete": (MASS, [
        "Error: refusing to delete 5 crons (more than the limit of 3): a, b, c, d, e; nothing "
        "deleted; run with --allow-mass-delete to delete them"]),
}


@pytest.mark.parametrize("name", list(ERROR_BLOCKS))
def test_error_blocks_name_the_file_and_the_way_out(name):
    error, expected = ERROR_BLOCKS[name]
    lines = render_text(Plan(commit=None, errors=(error,))).splitlines()
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected
    assert "No changes." not in lines
    assert lines[-1] == "Plan: 0 to create, 0 to update, 0 to delete. 1 error."


def test_failed_changes_and_pass_errors_are_blocks_without_class_names():
    plan = Plan(commit=None, changes=with_dependencies((
        Change("a", "schedule", "create", "new cron"),
        Change("a", "registry", "create", "new cron",
               desired=type("Item", (), {"file": "crons.d/a.yaml"})())), "test"))
    failed = ApplyError("a", "schedule", "create",
                        "PermanentError: PutRule: AccessDeniedException: no", "a/schedule/create")
    skipped = (Skipped(plan.changes[1], "a/schedule/create"),)
    text = render_text(plan, (failed,), ("LeaseLost: leader lease generation 3 of x was taken "
                                         "over by another replica; pass stopped",), skipped)
    assert "Skipped: a/registry/create: it depends on a/schedule/create, which failed; the " \
           "next pass tries again\n" in text
    assert "Error: crons.d/a.yaml: create schedule a failed\n" \
           "  PutRule: AccessDeniedException: no\n" \
           "  To fix: the changes that depend on it wait; the next pass tries again.\n" in text
    assert "Error: leader lease generation 3 of x was taken over by another replica; " \
           "pass stopped\n" in text
    assert "LeaseLost" not in text and "PermanentError" not in text
    assert text.splitlines()[-1] == "Plan: 2 to create, 0 to update, 0 to delete. 2 errors."
    data = json.loads(render_json(plan, {}, (failed,), ("ConfigError: unknown scheduler",),
                                  skipped=skipped))
    assert data["skipped"] == [{"id": "a/registry/create", "after": "a/schedule/create"}]
    assert [e["message"] for e in data["errors"]] == [
        "crons.d/a.yaml: create schedule a failed: PutRule: AccessDeniedException: no",
        "unknown scheduler"]
    assert data["apply_errors"] == [{"cron": "a", "resource": "schedule", "action": "create",
                                     "message": "PutRule: AccessDeniedException: no"}]
    assert data["summary"]["errors"] == 2


def test_a_pass_that_stopped_before_planning():
    assert render_text(None, pass_errors=("SourceError: no such ref",)) == \
        "Error: no such ref\n\nNothing planned: 1 error.\n"
    data = json.loads(render_json(None, pass_errors=("source unreadable, nothing changed: x",),
                                  commit="abc"))
    assert data["commit"] == "abc" and data["changes"] == []
    assert data["summary"]["errors"] == 1
    assert data["errors"][0]["message"] == "source unreadable, nothing changed: x"


@pytest.mark.parametrize(("text", "plain"), [
    ("ConfigError: unknown scheduler 'cron'", "unknown scheduler 'cron'"),
    ("LeaseLost: lease lost", "lease lost"),
    ("PutRule: AccessDeniedException: no", "PutRule: AccessDeniedException: no"),
    ("source unreadable, nothing changed: x", "source unreadable, nothing changed: x"),
])
def test_plain_message_drops_only_our_class_names(text, plain):
    assert plain_message(text) == plain


def test_text_has_symbols_fields_masks_and_summary():
    text = render_text(PLAN)
    assert "+ create schedule a: new cron" in text
    assert '    + expression = "cron(0 5 * * ? *)"' in text
    assert '    ~ spec.container.env.DB_PASSWORD: "(sensitive)" -> "(sensitive)"' in text
    assert '    ~ spec.container.env.LEVEL: "1" -> "2"' in text
    assert "t1" not in text and "old-pw" not in text and "new-pw" not in text
    assert "- delete schedule b: file removed" in text
    assert "Error: crons.d/d.yaml is invalid: cron d is held back" in text
    assert "schedule c" not in text
    assert text.rstrip().endswith("Plan: 1 to create, 1 to update, 1 to delete. 1 error.")


def test_json_shape_masks_and_omits_no_ops():
    data = json.loads(render_json(PLAN, {"events.PutRule": 2}))
    assert data["commit"] == "abc123"
    assert [c["cron"] for c in data["changes"]] == ["a", "a", "b"]
    assert data["changes"][0] == {"id": "a/schedule/create", "depends_on": [], "after": [],
                                  "cron": "a", "resource": "schedule", "action": "create",
                                  "reason": "new cron",
                                  "diff": {"expression": [None, "cron(0 5 * * ? *)"]}}
    assert (data["changes"][1]["id"], data["changes"][1]["depends_on"]) == (
        "a/registry/update", ["a/schedule/create"])
    assert data["changes"][1]["diff"]["spec.container.env.DB_PASSWORD"] == \
        ["(sensitive)", "(sensitive)"]
    assert data["errors"] == [{
        "cron": "d", "file": "crons.d/d.yaml",
        "message": "crons.d/d.yaml is invalid: cron d is held back",
        "way_out": "correct the file and commit it (`cronctl validate crons.d/d.yaml` lists every "
                   "error); until then its resources on AWS stay as they are"}]
    assert data["api_calls"] == {"events.PutRule": 2}
    assert data["summary"]["by_resource"]["schedule"] == {"create": 1, "update": 0, "delete": 1}


def test_sensitive_names():
    assert is_sensitive("spec.container.env.secret_key")
    assert is_sensitive("spec.container.env.GITHUB_TOKEN")
    assert not is_sensitive("spec.container.env.LEVEL")
    assert not is_sensitive("spec.container.image")

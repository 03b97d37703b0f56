"""Plan rendering: Terraform-style text, JSON, masking of secret-looking env values."""

from __future__ import annotations

import json

from reconciler.core.plan_model import Change, Plan, PlanError
from reconciler.core.plan_render import is_sensitive, render_json, render_text

PLAN = Plan(commit="abc123", changes=(
    Change("a", "schedule", "create", "new cron",
           (("expression", None, "cron(0 5 * * ? *)"),)),
    Change("a", "registry", "update", "spec changed", (
        ("spec.container.env.DB_PASSWORD", "old-pw", "new-pw"),
        ("spec.container.env.LEVEL", "1", "2"),
        ("overrides.containerOverrides.main.environment.api_token", "t1", "t2"))),
    Change("b", "schedule", "delete", "file removed", (("state", "ENABLED", None),)),
    Change("c", "schedule", "no-op", "up to date"),
), errors=(PlanError("d", "crons.d/d.yaml", "file invalid: kept as is"),))


def test_text_has_symbols_fields_masks_and_summary():
    text = render_text(PLAN)
    assert "+ create schedule a: new cron" in text
    assert '    + expression = "cron(0 5 * * ? *)"' in text
    assert '    ~ spec.container.env.DB_PASSWORD: "(sensitive)" -> "(sensitive)"' in text
    assert '    ~ spec.container.env.LEVEL: "1" -> "2"' in text
    assert "t1" not in text and "old-pw" not in text and "new-pw" not in text
    assert "- delete schedule b: file removed" in text
    assert "! error: d (crons.d/d.yaml): file invalid: kept as is" in text
    assert "schedule c" not in text
    assert text.rstrip().endswith("Plan: 0 to create, 1 to update, 1 to delete.")


def test_summary_counts_crons_and_task_definitions_apart():
    plan = Plan(commit=None, changes=(
        Change("test-td-1", "task-definition", "create", "new task definition for a"),
        Change("a", "schedule", "create", "new cron"),
        Change("a", "registry", "create", "new cron"),
        Change("b", "schedule", "create", "backend switch rules -> scheduler"),
        Change("b", "schedule", "delete", "backend switch rules -> scheduler"),
        Change("c", "schedule", "delete", "orphan: tagged as ours, no cron file"),
        Change("test-td-2", "task-definition", "delete", "no cron uses it any more"),
    ))
    assert render_text(plan).splitlines()[-2:] == [
        "Plan: 1 to create, 1 to update, 1 to delete.",
        "Task definitions: 1 to register, 1 to deregister."]


def test_no_changes():
    assert render_text(Plan(commit=None)) == "No changes.\n"


def test_json_shape_masks_and_omits_no_ops():
    data = json.loads(render_json(PLAN, {"events.PutRule": 2}))
    assert data["commit"] == "abc123"
    assert [c["cron"] for c in data["changes"]] == ["a", "a", "b"]
    assert data["changes"][0] == {"cron": "a", "resource": "schedule", "action": "create",
                                  "reason": "new cron",
                                  "diff": {"expression": [None, "cron(0 5 * * ? *)"]}}
    assert data["changes"][1]["diff"]["spec.container.env.DB_PASSWORD"] == \
        ["(sensitive)", "(sensitive)"]
    assert data["errors"] == [{"cron": "d", "file": "crons.d/d.yaml",
                               "message": "file invalid: kept as is"}]
    assert data["api_calls"] == {"events.PutRule": 2}


def test_sensitive_names():
    assert is_sensitive("spec.container.env.secret_key")
    assert is_sensitive("spec.container.env.GITHUB_TOKEN")
    assert not is_sensitive("spec.container.env.LEVEL")
    assert not is_sensitive("spec.container.image")


def test_json_errors_include_failed_changes():
    from reconciler.service.apply import ApplyError

    failed = ApplyError("a", "schedule", "create", "PutRule: AccessDeniedException: no")
    data = json.loads(render_json(PLAN, {}, (failed,)))
    assert data["errors"][1:] == [{"cron": "a", "file": "",
                                   "message": "create schedule failed: "
                                              "PutRule: AccessDeniedException: no"}]
    assert data["apply_errors"] == [{"cron": "a", "resource": "schedule", "action": "create",
                                     "message": "PutRule: AccessDeniedException: no"}]

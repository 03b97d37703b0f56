"""End to end against the moto server: create, no-op, edit, delete, rename, shared task
definitions, and the `cronctl reconcile` command's output and exit codes."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from reconciler.cli import main
from reconciler.service.control.reconcile import run_pass
from tests.support.reconcile_env import (
    cron_yaml,
    live_state,
    prepare,
    write_crons,
)

THREE = {
    "alpha": cron_yaml("cron(0 5 * * ? *)", "perl", env={"A": "1"}),
    "beta": cron_yaml("rate(5 minutes)", "perl", arguments=["bash", "-c", "echo hi"]),
    "gamma": cron_yaml("cron(*/10 * * * ? *)", "busybox", suspend=True),
}


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    settings = settings.with_(repo=str(tmp_path))
    return clients, settings, tmp_path


def reconcile(env, crons=None, *, dry_run=False):
    clients, settings, root = env
    if crons is not None:
        write_crons(root, crons)
    return run_pass(clients, settings, dry_run=dry_run)


def test_three_new_crons_are_planned_created_and_then_up_to_date(env):
    clients, settings, _ = env
    dry = reconcile(env, THREE, dry_run=True)
    assert dry.ok, dry
    counts = dry.plan.counts()
    assert counts == {"create": 3 * 2 + 2, "update": 0, "delete": 0}
    assert live_state(clients, settings)["rules"] == {}

    applied = reconcile(env)
    assert applied.ok, applied
    state = live_state(clients, settings)
    assert sorted(state["rules"]) == ["test-alpha", "test-beta", "test-gamma"]
    alpha = state["rules"]["test-alpha"]
    assert alpha["expression"] == "cron(0 5 * * ? *)" and alpha["state"] == "ENABLED"
    assert state["rules"]["test-gamma"]["state"] == "DISABLED"
    (target,) = alpha["targets"]
    assert target["Id"] == "cronctl-dispatch"
    assert target["Arn"] == "arn:aws:sns:us-east-1:123456789012:test-dispatch"
    assert target["InputTransformer"] == {
        "InputPathsMap": {"time": "$.time"},
        "InputTemplate": '{"cron": "alpha", "scheduled_at": "<time>"}'}
    assert alpha["tags"] == {"managed-by": "cronctl", "cronctl:namespace": "test",
                             "cronctl:cron": "alpha"}
    assert len(state["task_definitions"]) == 2  # perl shared by alpha and beta
    registry = state["registry"]
    assert registry["alpha"]["task_definition_arn"] == registry["beta"]["task_definition_arn"]
    perl = state["task_definitions"][registry["alpha"]["task_definition_arn"].split("/")[-1]]
    main_c, timeout_c = perl["containers"]
    assert (main_c["name"], main_c["image"], main_c["essential"]) == ("main", "perl", True)
    assert main_c["logConfiguration"]["options"]["awslogs-group"] == "/cronctl/test"
    assert timeout_c["name"] == "timeout" and timeout_c["command"][-1].endswith("exit 124")
    assert perl["tags"]["managed-by"] == "cronctl"
    overrides = json.loads(registry["beta"]["overrides"])
    assert overrides["containerOverrides"][0]["command"] == ["bash", "-c", "echo hi"]
    assert overrides["containerOverrides"][1] == {
        "name": "timeout", "command": ["sh", "-c", "sleep 86400; exit 124"]}
    assert (overrides["cpu"], overrides["memory"]) == ("256", "512")

    again = reconcile(env, dry_run=True)
    assert again.ok and not again.plan.has_changes


def test_edit_remove_and_rename_between_commits(env):
    clients, settings, _ = env
    assert reconcile(env, THREE).ok
    edited = {**THREE, "alpha": cron_yaml("cron(30 6 * * ? *)", "perl", env={"A": "1"})}
    result = reconcile(env, edited)
    assert [(c.cron, c.resource, c.action) for c in result.plan.pending] == [
        ("alpha", "schedule", "update"), ("alpha", "registry", "update")]
    assert result.plan.pending[0].reason == "schedule changed"
    assert live_state(clients, settings)["rules"]["test-alpha"]["expression"] == \
        "cron(30 6 * * ? *)"

    removed = {k: v for k, v in edited.items() if k != "gamma"}
    result = reconcile(env, removed)
    assert {(c.cron, c.action) for c in result.plan.pending} == {
        ("gamma", "delete"), (result.plan.pending[-1].cron, "delete")}
    state = live_state(clients, settings)
    assert "test-gamma" not in state["rules"] and "gamma" not in state["registry"]
    assert len(state["task_definitions"]) == 1  # busybox had no other user: deregistered

    renamed = {"alpha2" if k == "alpha" else k: v for k, v in removed.items()}
    result = reconcile(env, renamed)
    assert result.ok, result
    state = live_state(clients, settings)
    assert sorted(state["rules"]) == ["test-alpha2", "test-beta"]
    assert sorted(state["registry"]) == ["alpha2", "beta"]


def test_shared_task_definition_is_kept_for_env_changes_and_dropped_with_its_last_user(env):
    clients, settings, _ = env
    two = {"one": cron_yaml(image="perl", env={"X": "1"}), "two": cron_yaml(image="perl")}
    assert reconcile(env, two).ok
    before = live_state(clients, settings)["task_definitions"]
    assert len(before) == 1
    result = reconcile(env, {**two, "one": cron_yaml(image="perl", env={"X": "2"})})
    assert [(c.resource, c.action) for c in result.plan.pending] == [("registry", "update")]
    assert live_state(clients, settings)["task_definitions"] == before
    assert reconcile(env, {"two": two["two"]}).ok
    assert live_state(clients, settings)["task_definitions"] == before
    assert reconcile(env, {}, ).plan.errors == ()
    assert live_state(clients, settings)["task_definitions"] == {}


def test_command_exit_codes_and_outputs(env, capsys):
    clients, settings, root = env
    write_crons(root, THREE)
    args = ["reconcile", "--repo", str(root), "--namespace", "test"]
    assert main([*args, "--dry-run", "--detailed-exitcode"]) == 2
    out = capsys.readouterr().out
    assert "+ create schedule alpha: new cron" in out
    assert '+ expression = "cron(0 5 * * ? *)"' in out
    assert out.rstrip().endswith("Plan: 8 to create, 0 to update, 0 to delete.")
    assert main([*args, "--detailed-exitcode"]) == 2
    assert capsys.readouterr().out.rstrip().endswith("Applied 8 of 8 changes.")
    assert main([*args, "--dry-run", "--detailed-exitcode"]) == 0
    assert capsys.readouterr().out.strip() == "No changes."
    assert main([*args, "--dry-run", "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changes"] == [] and data["errors"] == []
    assert data["api_calls"]["dynamodb.Scan"] == 1


def test_bootstrapped_namespace_rule_is_left_alone(env):
    from reconciler.service.bootstrap import bootstrap

    clients, settings, _ = env
    bootstrap(clients, settings)
    events = clients.client("events")
    before = events.describe_rule(Name="test-ecs-events")
    before.pop("ResponseMetadata")
    targets = events.list_targets_by_rule(Rule="test-ecs-events")["Targets"]
    result = reconcile(env, {"alpha": THREE["alpha"], "ecs-events": THREE["beta"]})
    assert [(e.cron, "not managed by cronctl" in e.message) for e in result.plan.errors] == [
        ("ecs-events", True)]
    assert "test-alpha" in live_state(clients, settings)["rules"]
    assert reconcile(env, {}).ok
    after = events.describe_rule(Name="test-ecs-events")
    after.pop("ResponseMetadata")
    assert after == before
    assert events.list_targets_by_rule(Rule="test-ecs-events")["Targets"] == targets
    assert live_state(clients, settings)["registry"] == {}


def test_unknown_scheduler_backend_is_refused_before_anything_changes(env):
    clients, settings, root = env
    write_crons(root, THREE)
    with capture_logs() as logs:
        result = run_pass(clients, settings.with_(scheduler="cron"), dry_run=False)
    assert not result.ok and result.plan is None
    assert result.errors == ("unknown scheduler 'cron': use rules or scheduler",)
    line = next(entry for entry in logs if entry["event"] == "reconcile.pass")
    assert line["errors"] == ["unknown scheduler 'cron': use rules or scheduler"]
    assert live_state(clients, settings)["registry"] == {}


def test_registry_items_read_back_by_the_execution_plane(env):
    from reconciler.adapters.registry_read import RegistryReader

    clients, settings, _ = env
    assert reconcile(env, THREE).ok  # a plain folder: no commit
    item = RegistryReader(clients, settings).get("beta")
    assert item.commit is None and item.schedule_backend == "rules"
    assert item.task_definition_arn.startswith("arn:aws:ecs:us-east-1:123456789012:")
    assert item.overrides["containerOverrides"][0]["name"] == "main"


def test_registry_overrides_are_accepted_by_run_task(env):
    clients, settings, _ = env
    assert reconcile(env, THREE).ok
    ec2 = clients.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnet = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"][0]["GroupId"]
    item = live_state(clients, settings)["registry"]["beta"]
    (arn,) = clients.client("ecs").list_task_definitions(
        familyPrefix=item["task_definition_arn"].split("/")[-1])["taskDefinitionArns"]
    overrides = json.loads(item["overrides"])
    tasks = clients.client("ecs").run_task(
        cluster=settings.cluster_name, taskDefinition=arn, launchType="FARGATE",
        overrides=overrides, networkConfiguration={"awsvpcConfiguration": {
            "subnets": [subnet], "securityGroups": [group]}})["tasks"]
    assert len(tasks) == 1 and tasks[0]["taskDefinitionArn"] == arn
    assert tasks[0]["overrides"]["containerOverrides"][0]["command"] == ["bash", "-c", "echo hi"]


def test_api_calls_of_a_pass_leave_out_other_threads_on_the_same_clients(env):
    """The daemon's threads share one AwsClients: a pass counts only its own calls."""
    import threading

    clients, settings, root = env
    write_crons(root, THREE)
    sqs = clients.client("sqs")
    other_done, stop = threading.Event(), threading.Event()

    def other_thread():
        sqs.list_queues()
        other_done.set()
        stop.wait(10)

    worker = threading.Thread(target=other_thread, name="cronctl-test-other")

    def during_scan(**_kwargs):
        if not worker.is_alive() and not other_done.is_set():
            worker.start()
            assert other_done.wait(10)

    clients.client("dynamodb").meta.events.register("before-call.dynamodb.Scan", during_scan)
    try:
        result = run_pass(clients, settings, dry_run=True)
    finally:
        stop.set()
        worker.join(10)
        clients.client("dynamodb").meta.events.unregister("before-call.dynamodb.Scan",
                                                          during_scan)
    assert other_done.is_set() and not worker.is_alive()
    assert clients.counter.snapshot()["sqs.ListQueues"] == 1
    assert "sqs.ListQueues" not in result.api_calls
    assert result.api_calls["dynamodb.Scan"] == 1


def test_a_namespace_not_bootstrapped_is_named_and_nothing_is_created(settings, tmp_path,
                                                                       capsys):
    from reconciler.adapters.aws import AwsClients

    write_crons(tmp_path, THREE)
    args = ["reconcile", "--repo", str(tmp_path), "--namespace", "test"]
    assert main([*args, "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "registry table test-registry not found" in err
    assert "cronctl bootstrap --namespace test" in err
    assert main(args) == 1  # applying takes the leader lease first
    err = capsys.readouterr().err
    assert "leases table test-leases not found" in err
    assert "cronctl bootstrap --namespace test" in err
    clients = AwsClients(settings)
    assert clients.client("events").list_rules()["Rules"] == []
    assert clients.client("ecs").list_task_definitions()["taskDefinitionArns"] == []

"""Namespace settings: recorded once by `cronctl bootstrap` in the namespace, read by every
command and the daemon, changed only by bootstrap; and the Settings groups, flags and
variables they are built from."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.adapters.registry_read import RegistryReader
from reconciler.adapters.tables import ensure_tables
from reconciler.cli import main
from reconciler.errors import ConfigError
from reconciler.service.control.reconcile import run_pass
from reconciler.service.namespace import resolve
from reconciler.service.wiring import build_daemon
from reconciler.settings import (
    CapacityProvider,
    DaemonSettings,
    NamespaceSettings,
    Settings,
    SourceSettings,
    from_environment,
)
from tests.support.reconcile_env import cron_yaml, write_crons
from tests.support.waiting import wait_for

TWO = {"alpha": cron_yaml("cron(0 5 * * ? *)"), "beta": cron_yaml("rate(5 minutes)")}


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_reads_the_backend_the_daemon_uses_from_the_namespace(settings, tmp_path, capsys):
    """`make run` then `cronctl reconcile --dry-run` in a second terminal: no backend switch."""
    write_crons(tmp_path, TWO)
    code, _, _ = _cli(capsys, "bootstrap", "--namespace", "test", "--scheduler", "scheduler")
    assert code == 0
    daemon_settings = settings.with_(repo=str(tmp_path), listen="127.0.0.1:0", sqs_wait_s=1)
    built = build_daemon(daemon_settings, embedded=False, cert_fetch=moto_cert_fetcher)
    assert built.settings.scheduler == "scheduler"
    built.daemon.start()
    try:
        wait_for(lambda: built.loop.last_result is not None, timeout=30,
                 message="the daemon's first reconcile pass")
        first = built.loop.last_result
        assert first.ok, first.errors
        assert {c.desired.backend for c in first.applied if c.resource == "schedule"} == \
            {"scheduler"}

        code, out, err = _cli(capsys, "reconcile", "--repo", str(tmp_path),
                              "--namespace", "test", "--dry-run")
        assert (code, out.splitlines()[-1]) == (0, "No changes."), out
        assert "cronctl reconcile" not in err  # no warning, no refusal (the daemon logs there)
    finally:
        assert built.daemon.stop(budget_s=30)


def test_a_contradicting_flag_or_variable_is_refused_saying_how_to_change_it(
        settings, tmp_path, capsys, monkeypatch):
    write_crons(tmp_path, TWO)
    assert _cli(capsys, "bootstrap", "--namespace", "test")[0] == 0

    code, out, err = _cli(capsys, "reconcile", "--repo", str(tmp_path), "--namespace", "test",
                          "--dry-run", "--scheduler", "scheduler")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "namespace 'test' records scheduler=rules; --scheduler scheduler contradicts it" \
        in err
    assert err.rstrip().endswith("cronctl bootstrap --namespace test --scheduler scheduler")

    monkeypatch.setenv("CRONCTL_LOG_GROUP", "/elsewhere")
    code, out, err = _cli(capsys, "list", "--namespace", "test")
    assert (code, out) == (1, "")
    assert "records log_group=/cronctl/test; CRONCTL_LOG_GROUP=/elsewhere contradicts it" in err
    assert "cronctl bootstrap --namespace test --log-group /elsewhere" in err

    monkeypatch.setenv("CRONCTL_LOG_GROUP", "/cronctl/test")  # the same value: fine
    assert _cli(capsys, "list", "--namespace", "test")[0] == 0


def test_bootstrap_shows_each_change_records_it_and_keeps_what_is_not_given(
        settings, tmp_path, capsys):
    write_crons(tmp_path, TWO)
    code, out, _ = _cli(capsys, "bootstrap", "--namespace", "test")
    assert code == 0
    assert "settings recorded (version 1):" in out and "  scheduler: rules" in out.splitlines()
    repo = ["--repo", str(tmp_path), "--namespace", "test"]
    assert _cli(capsys, "reconcile", *repo)[0] == 0

    code, out, _ = _cli(capsys, "bootstrap", "--namespace", "test", "--scheduler", "scheduler",
                        "--rules-quota", "500")
    assert code == 0
    assert "settings changed (version 2):" in out
    assert "  scheduler: rules -> scheduler" in out.splitlines()
    assert "  rules_quota: 300 -> 500" in out.splitlines()

    code, out, _ = _cli(capsys, "reconcile", *repo, "--dry-run")  # no --scheduler
    assert code == 0
    assert "backend switch rules -> scheduler" in out

    code, out, _ = _cli(capsys, "bootstrap", "--namespace", "test")
    assert "settings unchanged (version 2)" in out
    code, out, _ = _cli(capsys, "bootstrap", "--namespace", "test", "--output", "json")
    document = json.loads(out)
    assert (document["settings_version"], document["settings_changes"]) == (2, [])
    assert document["settings"]["scheduler"] == "scheduler"
    assert document["settings"]["execution_role_arn"].endswith(":role/test-task-execution")


def test_a_namespace_without_recorded_settings_falls_back_and_warns_once(settings, capsys):
    ensure_tables(AwsClients(settings), settings)  # bootstrapped before settings were recorded
    code, out, err = _cli(capsys, "list", "--namespace", "test")
    assert code == 0
    assert err.splitlines() == [
        "cronctl list: warning: namespace 'test' has no recorded settings: using flags, "
        "CRONCTL_* variables and defaults; run `cronctl bootstrap --namespace test` to record "
        "them, so that every command and the daemon agree"]


def test_the_cron_scan_and_lookups_never_see_the_namespace_item(settings, tmp_path, capsys):
    write_crons(tmp_path, TWO)
    assert _cli(capsys, "bootstrap", "--namespace", "test")[0] == 0
    assert _cli(capsys, "reconcile", "--repo", str(tmp_path), "--namespace", "test")[0] == 0
    reader = RegistryReader(AwsClients(settings), settings)
    assert [item.name for item in reader.all()] == ["alpha", "beta"]
    assert reader.get("#namespace") is None
    code, _, err = _cli(capsys, "status", "#namespace", "--namespace", "test")
    assert code == 1 and "no cron named '#namespace'" in err


def test_a_process_refuses_to_reconcile_once_the_recorded_settings_changed(settings, tmp_path,
                                                                          capsys):
    write_crons(tmp_path, TWO)
    assert _cli(capsys, "bootstrap", "--namespace", "test")[0] == 0
    clients = AwsClients(settings)
    started = resolve(clients, from_environment(namespace="test", repo=str(tmp_path)))
    assert started.recorded_version == 1
    assert run_pass(clients, started, dry_run=True).ok

    assert _cli(capsys, "bootstrap", "--namespace", "test", "--scheduler", "scheduler")[0] == 0
    result = run_pass(clients, started, dry_run=False)
    assert result.plan is None
    assert "changed since this process started (version 1 -> 2)" in result.errors[0]
    assert RegistryReader(clients, settings).all() == []


def test_bootstrap_creates_the_default_roles_with_their_trust_and_permissions(settings):
    from reconciler.service.bootstrap import bootstrap

    clients = AwsClients(settings)
    result = bootstrap(clients, settings.with_(execution_role_arn=None))
    iam = clients.client("iam")

    def trust(name):
        document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        return document if isinstance(document, dict) else json.loads(unquote(document))

    assert trust("test-task-execution")["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"}
    attached = iam.list_attached_role_policies(RoleName="test-task-execution")
    inline = iam.list_role_policies(RoleName="test-task-execution")["PolicyNames"]
    assert "AmazonECSTaskExecutionRolePolicy" in (
        [p["PolicyName"] for p in attached["AttachedPolicies"]] + inline)
    assert trust("test-scheduler")["Statement"][0]["Principal"] == {
        "Service": "scheduler.amazonaws.com"}
    publish = iam.get_role_policy(RoleName="test-scheduler", PolicyName="publish")
    document = publish["PolicyDocument"]
    document = document if isinstance(document, dict) else json.loads(unquote(document))
    assert document["Statement"] == [{"Effect": "Allow", "Action": "sns:Publish",
                                      "Resource": result.topic_arn}]
    assert result.settings.execution_role_arn == \
        "arn:aws:iam::123456789012:role/test-task-execution"
    assert result.settings.scheduler_role_arn == "arn:aws:iam::123456789012:role/test-scheduler"


# --- Settings: groups, flags, variables ------------------------------------------------------

def test_settings_are_composed_per_concern_and_flat_names_still_work():
    settings = Settings(namespace="ns", repo="/r", scheduler="scheduler", cluster="c",
                        subnets=("s-1",), interval_s=5.0, capacity_providers=("FARGATE_SPOT:3",))
    assert settings.source == SourceSettings(repo="/r")
    assert settings.daemon == DaemonSettings(interval_s=5.0)
    assert settings.namespace_settings.scheduler == "scheduler"
    assert (settings.repo, settings.scheduler, settings.cluster, settings.interval_s) == \
        ("/r", "scheduler", "c", 5.0)
    assert settings.network.subnets == ("s-1",)
    assert settings.capacity_providers == (CapacityProvider("FARGATE_SPOT", 3, 0),)
    assert settings.launch_type is None and settings.placement.fargate
    changed = settings.with_(launch_type="EC2", listen="0.0.0.0:1")
    assert (changed.launch_type, changed.capacity_providers, changed.listen) == \
        ("EC2", (), "0.0.0.0:1")
    assert not changed.placement.fargate
    assert Settings().launch_type == "FARGATE"
    recorded = NamespaceSettings.from_record(settings.namespace_settings.to_record())
    assert recorded == settings.namespace_settings


def test_flags_win_over_variables_which_win_over_defaults(monkeypatch):
    monkeypatch.setenv("CRONCTL_SCHEDULER", "scheduler")
    monkeypatch.setenv("CRONCTL_INTERVAL_S", "7.5")
    monkeypatch.setenv("CRONCTL_CAPACITY_PROVIDERS", "FARGATE_SPOT:2:1,FARGATE")
    monkeypatch.setenv("CRONCTL_ASSIGN_PUBLIC_IP", "true")
    monkeypatch.setenv("CRONCTL_EXECUTION_ROLE_ARN", "arn:aws:iam::1:role/x")
    settings = from_environment(scheduler="rules", rules_quota=400)
    assert settings.scheduler == "rules" and settings.interval_s == 7.5
    assert settings.capacity_providers == (CapacityProvider("FARGATE_SPOT", 2, 1),
                                           CapacityProvider("FARGATE"))
    assert settings.network.assign_public_ip is True
    assert settings.given["scheduler"] == "--scheduler rules"
    assert settings.given["execution_role_arn"] == \
        "CRONCTL_EXECUTION_ROLE_ARN=arn:aws:iam::1:role/x"
    assert settings.rules_quota == 400 and "listen" not in settings.given

    with pytest.raises(ConfigError, match="exclude each other"):
        from_environment(launch_type="EC2")
    monkeypatch.setenv("CRONCTL_INTERVAL_S", "soon")
    with pytest.raises(ConfigError, match="CRONCTL_INTERVAL_S must be a positive number"):
        from_environment()


@pytest.mark.parametrize("text", ["", ":3", "FARGATE:x", "FARGATE:1:2:3", "FARGATE:-1"])
def test_a_bad_capacity_provider_is_refused(text):
    with pytest.raises(ConfigError, match=r"name\[:weight\[:base\]\]"):
        CapacityProvider.parse(text)


@pytest.mark.parametrize(("command", "flag", "variable"), [
    ("serve", "--interval", "CRONCTL_INTERVAL_S"),
    ("reconcile", "--execution-role-arn", "CRONCTL_EXECUTION_ROLE_ARN"),
    ("bootstrap", "--capacity-provider", "CRONCTL_CAPACITY_PROVIDERS"),
    ("trigger", "--task-role-arn", "CRONCTL_TASK_ROLE_ARN"),
    ("logs", "--log-group", "CRONCTL_LOG_GROUP"),
    ("status", "--rules-quota", "CRONCTL_RULES_QUOTA"),
])
def test_help_names_each_setting_variable_and_default(capsys, command, flag, variable):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert flag in text
    after = text[text.index(flag):]
    assert f"env {variable}; default" in after


def test_run_task_uses_the_capacity_provider_strategy_instead_of_a_launch_type(plane, settings):
    from reconciler.adapters.ec2 import default_network
    from reconciler.adapters.ecs_tasks import EcsTasks

    clients, task_definition = plane
    sent = []
    clients.client("ecs").meta.events.register(
        "provide-client-params.ecs.RunTask", lambda params, **_: sent.append(dict(params)))
    spot = settings.with_(capacity_providers=("FARGATE_SPOT:2:1",))
    result = EcsTasks(clients, spot).run_task(
        task_definition=task_definition, overrides={}, token="t-1", tags={},
        network=default_network(clients))
    assert result.task_arn
    assert sent[0]["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 2, "base": 1}]
    assert "launchType" not in sent[0]


def test_a_rules_quota_below_one_is_refused(capsys):
    assert main(["reconcile", "--dry-run", "--rules-quota", "0"]) == 1
    assert "--rules-quota must be 1 or more, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(("raw", "wanted"), [
    ("ENABLED", True), ("DISABLED", False), ("enabled", True), ("Disabled", False),
    ("true", True), ("FALSE", False), ("1", True), ("0", False), (" yes ", True)])
def test_assign_public_ip_reads_true_false_and_the_aws_words(monkeypatch, raw, wanted):
    """CRONCTL_ASSIGN_PUBLIC_IP as the namespace stack's output AssignPublicIp says it
    (ENABLED/DISABLED, exported verbatim by the README's cronctl_env), or true/false."""
    monkeypatch.setenv("CRONCTL_ASSIGN_PUBLIC_IP", raw)
    settings = from_environment()
    assert settings.network.assign_public_ip is wanted
    assert settings.given["assign_public_ip"] == f"CRONCTL_ASSIGN_PUBLIC_IP={raw}"


def test_assign_public_ip_refuses_other_words(monkeypatch):
    monkeypatch.setenv("CRONCTL_ASSIGN_PUBLIC_IP", "sometimes")
    with pytest.raises(ConfigError, match="CRONCTL_ASSIGN_PUBLIC_IP must be true or false "
                                          r"\(or ENABLED or DISABLED\), got 'sometimes'"):
        from_environment()


@pytest.mark.parametrize("flag", ["--monitor-url", "--monitor-ping-url"])
def test_a_monitoring_url_flag_is_checked_like_its_variable(flag, capsys):
    from reconciler.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["reconcile", "--dry-run", flag, "healthchecks.example"])
    assert exit_info.value.code == 2
    assert "expected an http(s):// URL, got 'healthchecks.example'" in capsys.readouterr().err

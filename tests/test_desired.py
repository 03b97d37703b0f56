"""core.desired as plain tables: names, target inputs, task definitions, overrides."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reconciler.core.desired import (
    Deployment,
    desired_cron,
    rule_input_template,
    rule_name,
    scheduler_input,
    timezone_problem,
)
from reconciler.core.spec import Capacity, ContainerSpec, CronSpec
from tests.support.fixtures import FIXTURES

DEP = Deployment(namespace="test", region="us-east-1", account="123456789012",
                 backend="rules", sidecar_image="busybox", log_group="/cronctl/test")


def spec(name="nightly", **container) -> CronSpec:
    fields = {"image": "perl", **container}
    return CronSpec(name=name, file=f"crons.d/{name}.yaml", schedule="cron(0 5 * * ? *)",
                    container=ContainerSpec(**fields))


@pytest.mark.parametrize("namespace, cron, expected", [
    ("test", "nightly", "test-nightly"),
    ("crons", "a" * 58, "crons-" + "a" * 58),
])
def test_rule_name_fits(namespace, cron, expected):
    assert rule_name(namespace, cron) == expected


def test_long_rule_name_is_truncated_with_a_distinguishing_hash():
    one, two = rule_name("crons", "a" * 60 + "x"), rule_name("crons", "a" * 60 + "y")
    assert len(one) == len(two) == 64 and one != two and one.startswith("crons-aaaa")


def test_rule_input_template_gives_the_dispatch_message_once_time_is_filled_in():
    # EventBridge inserts the value of <time> unescaped (fixture input_transformer_awsdocs)
    fixture = json.load(open(FIXTURES / "events" / "input_transformer_awsdocs.json"))
    filled = rule_input_template("nightly").replace("<time>", fixture["event"]["time"])
    assert json.loads(filled) == {"cron": "nightly", "scheduled_at": "2015-11-11T21:29:54Z"}


def test_scheduler_input_uses_the_scheduled_time_context_attribute():
    fixture = json.load(open(
        FIXTURES / "events" / "scheduler_context_attributes_awsdocs.json"))
    keyword = fixture["cdk_constants_for_cross_check"]["scheduled_time"]
    assert json.loads(scheduler_input("nightly")) == {"cron": "nightly",
                                                      "scheduled_at": keyword}


@pytest.mark.parametrize("timezone, schedule, backend, problem", [
    ("UTC", "cron(0 5 * * ? *)", "rules", False),
    ("Europe/Berlin", "cron(0 5 * * ? *)", "rules", True),
    ("Europe/Berlin", "rate(5 minutes)", "rules", False),
    ("Europe/Berlin", "cron(0 5 * * ? *)", "scheduler", False),
])
def test_timezone_needs_the_scheduler_for_cron_on_rules(timezone, schedule, backend, problem):
    s = replace(spec(), timezone=timezone, schedule=schedule)
    assert bool(timezone_problem(s, backend)) is problem


def test_same_image_shares_a_definition_env_and_arguments_do_not_matter():
    a = desired_cron(spec("a", env=(("X", "1"),)), DEP)
    b = desired_cron(spec("b", arguments=("echo",)), DEP)
    c = desired_cron(spec("c", image="busybox"), DEP)
    d = desired_cron(spec("d", secrets=(("DB", "arn:aws:ssm:us-east-1:1:parameter/db"),)), DEP)
    assert a.task_definition == b.task_definition
    assert len({a.task_definition.family, c.task_definition.family,
                d.task_definition.family}) == 3
    assert a.task_definition.family.startswith("test-td-") and \
        len(a.task_definition.family) == len("test-td-") + 16


def test_task_definition_containers_and_tags():
    td = desired_cron(spec(secrets=(("DB", "arn:db"),)), DEP).task_definition.register_args
    main, timeout = td["containerDefinitions"]
    assert (main["name"], main["image"], main["essential"], main["memory"]) == \
        ("main", "perl", True, 480)
    assert main["secrets"] == [{"name": "DB", "valueFrom": "arn:db"}]
    assert main["logConfiguration"]["options"] == {
        "awslogs-group": "/cronctl/test", "awslogs-region": "us-east-1",
        "awslogs-stream-prefix": "test"}
    assert timeout == {"name": "timeout", "image": "busybox", "essential": True,
                       "command": ["sh", "-c", "sleep 86400; exit 124"], "memory": 32}
    assert (td["networkMode"], td["requiresCompatibilities"], td["cpu"], td["memory"]) == \
        ("awsvpc", ["FARGATE"], "256", "512")
    assert {t["key"]: t["value"] for t in td["tags"]}["managed-by"] == "cronctl"


@pytest.mark.parametrize("container, role, expected", [
    ({}, None, {"containerOverrides": [
        {"name": "main", "environment": [], "memory": 480},
        {"name": "timeout", "command": ["sh", "-c", "sleep 600; exit 124"]}],
        "cpu": "256", "memory": "512"}),
    ({"arguments": ("perl", "-e", "1"), "env": (("A", "b"),),
      "capacity": Capacity(cpu=1024, memory=2048)}, "arn:aws:iam::1:role/r",
     {"containerOverrides": [
         {"name": "main", "command": ["perl", "-e", "1"],
          "environment": [{"name": "A", "value": "b"}], "memory": 2016},
         {"name": "timeout", "command": ["sh", "-c", "sleep 600; exit 124"]}],
      "cpu": "1024", "memory": "2048", "taskRoleArn": "arn:aws:iam::1:role/r"}),
])
def test_overrides(container, role, expected):
    s = replace(spec(**container), timeout_s=600, role=role)
    assert desired_cron(s, DEP).overrides == expected


def test_scheduler_schedule_fields():
    s = replace(spec(), timezone="Europe/Berlin", suspend=True)
    sched = desired_cron(s, replace(DEP, backend="scheduler")).schedule
    assert (sched.name, sched.group, sched.timezone, sched.state) == \
        ("nightly", "test", "Europe/Berlin", "DISABLED")
    assert sched.role_arn == "arn:aws:iam::123456789012:role/test-scheduler"
    assert sched.arn == "arn:aws:scheduler:us-east-1:123456789012:schedule/test/nightly"


@pytest.mark.parametrize(("partition", "backend", "schedule_arn", "topic", "role"), [
    ("aws", "rules", "arn:aws:events:us-east-1:123456789012:rule/test-nightly",
     "arn:aws:sns:us-east-1:123456789012:test-dispatch", None),
    ("aws-cn", "scheduler", "arn:aws-cn:scheduler:us-east-1:123456789012:schedule/test/nightly",
     "arn:aws-cn:sns:us-east-1:123456789012:test-dispatch",
     "arn:aws-cn:iam::123456789012:role/test-scheduler"),
])
def test_arns_follow_the_callers_partition(partition, backend, schedule_arn, topic, role):
    dep = replace(DEP, partition=partition, backend=backend)
    cron = desired_cron(spec(), dep)
    assert cron.schedule.arn == schedule_arn
    assert cron.schedule.target_arn == topic
    assert cron.schedule.role_arn == role

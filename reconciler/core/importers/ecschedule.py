"""ecschedule configurations (YAML or JSON): ``region``, ``cluster``, ``rules[]``.

A rule names its task definition; the definition (its image, command, environment,
secrets, cpu and memory) is on AWS, not in the file. Offline, the image is unknown: a rule
is refused unless ``--image RULE=IMAGE`` gives it (then only the rule's overrides are
carried over, and that is reported); ``cronctl import aws --rules-prefix`` reads the
definitions from AWS instead.
"""

from __future__ import annotations

from typing import Any

import yaml

from reconciler.core.importers.common import (
    command,
    container,
    cron_name,
    environment,
)
from reconciler.core.importers.model import (
    Collector,
    ImportedCron,
    ImportResult,
    Refusal,
    Refused,
    SourceSchedule,
)

RULE_KEYS = {"name", "scheduleExpression", "taskDefinition", "containerOverrides", "disabled"}
PLACEMENT = "tasks are placed by the namespace's settings (cluster, network, platform)"
REASONS = {
    "description": "a cron file has no description; see the header comment",
    "role": "cronctl's schedules start runs with the namespace's roles",
    "group": PLACEMENT, "launch_type": PLACEMENT, "platform_version": PLACEMENT,
    "network_configuration": PLACEMENT, "capacityProviderStrategy": PLACEMENT,
    "taskCount": "a run starts one task",
    "dead_letter_config": "cronctl records runs that fail to start (FAILED_TO_START)",
    "propagateTags": "cronctl tags what it creates",
}


def convert(source_file: str, text: str, images: dict[str, str] | None = None) -> ImportResult:
    images = images or {}
    if "{{" in text:
        return _file_refused(source_file, "the file uses template functions ({{ ... }}); render "
                                          "it first (e.g. with the variables set, ecschedule "
                                          "dump) and import the result")
    try:
        config = yaml.safe_load(text)   # JSON is YAML too
    except yaml.YAMLError as error:
        return _file_refused(source_file, "not valid YAML or JSON: " + " ".join(str(error).split()))
    if not isinstance(config, dict) or not isinstance(config.get("rules"), list):
        return _file_refused(source_file, "not an ecschedule configuration (no 'rules' list)")
    result = ImportResult()
    for index, rule in enumerate(config["rules"]):
        origin = f"rules[{index}]"
        if isinstance(rule, dict) and isinstance(rule.get("name"), str):
            origin = f"rule {rule['name']!r}"
        try:
            result += ImportResult(crons=(_rule(source_file, origin, config, rule, images),))
        except Refusal as refusal:
            result += ImportResult(refused=(Refused(source_file, origin, refusal.field,
                                                    refusal.reason),))
    return result


def _file_refused(source_file: str, reason: str) -> ImportResult:
    return ImportResult(refused=(Refused(source_file, "", "", reason),))


def _rule(source_file: str, origin: str, config: dict, rule: Any,
          images: dict[str, str]) -> ImportedCron:
    if not isinstance(rule, dict):
        raise Refusal("", "expected a rule (a map)")
    collected = Collector()
    name = cron_name(rule.get("name"), "name")
    expression = rule.get("scheduleExpression")
    if not isinstance(expression, str):
        raise Refusal("scheduleExpression", "missing")
    task_definition = rule.get("taskDefinition")
    image = images.get(name) or images.get(str(rule.get("name")))
    if not image:
        raise Refusal("taskDefinition", f"the image of task definition {task_definition!r} "
                                        "cannot be read offline: give it with --image "
                                        f"{name}=IMAGE, or import the live rule with "
                                        "cronctl import aws --rules-prefix")
    collected.drop("taskDefinition", f"{task_definition!r} was not read (offline): its "
                   "command, environment, secrets and cpu/memory are not carried over; the "
                   f"image is the one given with --image ({image})")
    overrides = rule.get("containerOverrides") or []
    if not isinstance(overrides, list):
        raise Refusal("containerOverrides", "expected a list")
    if len(overrides) > 1:
        raise Refusal("containerOverrides", f"{len(overrides)} containers are overridden; a "
                                            "cron runs one container")
    arguments, env = None, {}
    if overrides:
        override = overrides[0]
        if "command" in override:
            arguments = command(override["command"], "containerOverrides[0].command")
        env = environment(override.get("environment"), "containerOverrides[0].environment",
                          collected)
        for key in override:
            if key not in ("name", "command", "environment"):
                collected.drop(f"containerOverrides[0].{key}", "a container-level "
                               "override; cronctl sizes the whole task (container.capacity)")
    document: dict[str, Any] = {"schedule": expression,
                                "container": container(image, arguments, env, {}),
                                # EventBridge starts every run, whether or not the last
                                # one still runs.
                                "concurrency": "allow"}
    if rule.get("disabled") is True:
        document["suspend"] = True
    for key in rule:
        if key not in RULE_KEYS:
            collected.drop(key, REASONS.get(key, "cronctl has no equivalent"))
    for key, reason in (("cluster", "runs start on the namespace's cluster"),
                        ("region", "crons run in the namespace's region"),
                        ("role", "cronctl's schedules start runs with the namespace's roles"),
                        ("plugins", "template plugins: render the config first")):
        if key in config:
            collected.drop(key, reason)
    for key in config:
        if key not in ("cluster", "region", "role", "plugins", "rules"):
            collected.drop(key, "cronctl has no equivalent")
    return ImportedCron(name=name, source_file=source_file, origin=origin, document=document,
                        schedule=SourceSchedule(expression), dropped=tuple(collected.dropped))

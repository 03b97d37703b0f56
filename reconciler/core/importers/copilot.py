"""AWS Copilot ``Scheduled Job`` manifests (``copilot/<job>/manifest.yml``).

What Copilot accepts in ``on.schedule`` (its manifest reference, "on.schedule"): the macros
``@yearly @monthly @weekly @daily @hourly`` (and ``@annually``, ``@midnight``),
``@every DURATION`` (a Go duration), ``rate(...)`` and ``cron(...)`` in AWS's grammar, and a
standard 5-field cron expression (evaluated in UTC).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from reconciler.core.importers.common import (
    command,
    container,
    cron_name,
    drop_unknown,
    environment,
    positive_int,
    timeout,
)
from reconciler.core.importers.cron5 import go_duration_seconds, to_aws
from reconciler.core.importers.model import (
    Collector,
    ImportedCron,
    ImportResult,
    Refusal,
    Refused,
    SourceSchedule,
)

KNOWN = {"name", "type", "on", "image", "command", "cpu", "memory", "variables", "secrets",
         "retries", "timeout"}
PLACEMENT = "tasks are placed by the namespace's settings (cluster, network, platform)"
REASONS = {
    "entrypoint": "cronctl's arguments replace the image's CMD; the ENTRYPOINT cannot be "
                  "changed",
    "network": PLACEMENT,
    "platform": PLACEMENT,
    "storage": "cronctl mounts no volumes",
    "sidecars": "a cron runs one container (and cronctl's timeout sidecar)",
    "logging": "logs go to the namespace's log group (cronctl logs)",
    "environments": "per-environment overrides are not applied; the manifest's base values "
                    "were imported",
    "taskdef_overrides": "raw task definition overrides have no equivalent",
}


def schedule(raw: object) -> tuple[str, SourceSchedule]:
    if not isinstance(raw, str) or not raw.strip():
        raise Refusal("on.schedule", f"expected a schedule, got {raw!r}")
    text = raw.strip()
    if text.startswith(("cron(", "rate(")):
        return text, SourceSchedule(text)          # AWS's grammar: carried over unchanged
    try:
        expression = to_aws(text)
    except Refusal as refusal:
        raise Refusal("on.schedule", refusal.reason) from None
    return expression, SourceSchedule(text, "UTC", expression.startswith("cron("))


def convert(source_file: str, text: str, image: str | None = None) -> ImportResult:
    """One manifest; ``image`` stands in for an ``image.build`` (``--image NAME=IMAGE``)."""
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return ImportResult(refused=(Refused(source_file, "", "", "not valid YAML: "
                                             + " ".join(str(error).split())),))
    if not isinstance(manifest, dict) or "type" not in manifest:
        return ImportResult(refused=(Refused(source_file, "", "type", "not a Copilot "
                                             "manifest (no 'type')"),))
    if True in manifest and "on" not in manifest:  # YAML 1.1 reads the key `on` as true
        manifest = {("on" if key is True else key): value for key, value in manifest.items()}
    origin = f"job {manifest.get('name')!r}" if manifest.get("name") else ""
    if manifest["type"] != "Scheduled Job":
        return ImportResult(refused=(Refused(source_file, origin, "type", f"{manifest['type']!r}"
                                             " is not a Scheduled Job; only Scheduled Job "
                                             "manifests can be imported"),))
    try:
        return ImportResult(crons=(_job(source_file, origin, manifest, image),))
    except Refusal as refusal:
        return ImportResult(refused=(Refused(source_file, origin, refusal.field,
                                             refusal.reason),))


def _job(source_file: str, origin: str, manifest: dict, image: str | None) -> ImportedCron:
    collected = Collector()
    name = cron_name(manifest.get("name") or PurePosixPath(source_file).parent.name, "name")
    trigger = manifest.get("on")
    expression, source = schedule(trigger.get("schedule") if isinstance(trigger, dict)
                                  else None)
    if isinstance(trigger, dict):
        drop_unknown(trigger, {"schedule"}, "on.", collected)
    spec = manifest.get("image") or {}
    if not isinstance(spec, dict):
        raise Refusal("image", "expected a map with 'location' or 'build'")
    location = spec.get("location")
    if "build" in spec and not location:
        if not image:
            raise Refusal("image.build", "an image built by Copilot from a Dockerfile is not an "
                                         "image reference: push it and give it with "
                                         f"--image {name}=IMAGE")
        collected.drop("image.build", f"built by Copilot; imported with --image {image}")
        location = image
    if not isinstance(location, str) or not location:
        raise Refusal("image.location", "missing")
    if "${" in location:
        raise Refusal("image.location", f"{location!r} names environment variables that "
                                        f"Copilot fills in at deploy time; give the image with "
                                        f"--image {name}=IMAGE")
    drop_unknown(spec, {"location", "build"}, "image.", collected)
    arguments = command(manifest["command"], "command") if "command" in manifest else None
    env = environment(manifest.get("variables"), "variables", collected)
    secrets: dict[str, str] = {}
    for key, value in (manifest.get("secrets") or {}).items():
        if isinstance(value, str):
            secrets[str(key)] = value
        else:
            collected.drop(f"secrets.{key}", f"{value!r}: only SSM parameter names are "
                           "carried over; give a Secrets Manager ARN in container.secrets")
    cpu = positive_int(manifest["cpu"], "cpu") if "cpu" in manifest else None
    memory = positive_int(manifest["memory"], "memory") if "memory" in manifest else None
    document: dict[str, Any] = {"schedule": expression,
                                "container": container(location, arguments, env, secrets,
                                                       cpu, memory)}
    if "timeout" in manifest:
        try:
            seconds = go_duration_seconds(str(manifest["timeout"]))
        except ValueError as error:
            raise Refusal("timeout", str(error)) from None
        document["timeout"] = timeout(seconds, "timeout")
    # Copilot starts every scheduled run, whether or not the last one still runs.
    document["concurrency"] = "allow"
    if "retries" in manifest:
        collected.drop("retries", "cronctl does not retry failed runs yet")
    for key in manifest:
        if key not in KNOWN:
            collected.drop(key, REASONS.get(key, "cronctl has no equivalent"))
    return ImportedCron(name=name, source_file=source_file, origin=origin or f"job {name!r}",
                        document=document, schedule=source, dropped=tuple(collected.dropped))

"""Kubernetes ``batch/v1`` CronJob manifests (one file may hold several documents)."""

from __future__ import annotations

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
from reconciler.core.importers.cron5 import to_aws
from reconciler.core.importers.model import (
    Collector,
    ImportedCron,
    ImportResult,
    Refusal,
    Refused,
    SourceSchedule,
)
from reconciler.core.schedule.expressions import validate_timezone

API_VERSIONS = ("batch/v1", "batch/v1beta1")
CONCURRENCY = {"Allow": "allow", "Forbid": "forbid", "Replace": "replace"}
NO_EQUIVALENT = "cronctl has no equivalent"


def convert(source_file: str, text: str) -> ImportResult:
    """Every CronJob document of one file; any other document is refused."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        return ImportResult(refused=(Refused(source_file, "", "", "not valid YAML: "
                                             + " ".join(str(error).split())),))
    result = ImportResult()
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        origin = f"document {index}"
        if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
            origin = f"CronJob {document['metadata'].get('name')!s} (document {index})"
        try:
            result += ImportResult(crons=(_cron_job(source_file, origin, document),))
        except Refusal as refusal:
            result += ImportResult(refused=(Refused(source_file, origin, refusal.field,
                                                    refusal.reason),))
    if not result.crons and not result.refused:
        result += ImportResult(refused=(Refused(source_file, "", "", "no CronJob in the "
                                                "file"),))
    return result


def schedule_and_zone(raw: object, zone: object) -> tuple[str, SourceSchedule]:
    """The AWS expression and the source schedule (without a ``CRON_TZ=`` prefix)."""
    if not isinstance(raw, str) or not raw.strip():
        raise Refusal("spec.schedule", f"expected a cron expression, got {raw!r}")
    text = raw.strip()
    prefix_zone = None
    for prefix in ("CRON_TZ=", "TZ="):
        if text.startswith(prefix):
            prefix_zone, _, text = text[len(prefix):].partition(" ")
            text = text.strip()
    if zone is not None and not isinstance(zone, str):
        raise Refusal("spec.timeZone", f"expected an IANA zone name, got {zone!r}")
    if prefix_zone and zone and prefix_zone != zone:
        raise Refusal("spec.schedule", f"the schedule's time zone {prefix_zone!r} contradicts "
                                       f"spec.timeZone {zone!r}")
    timezone = prefix_zone or zone or "UTC"
    for problem in validate_timezone(timezone):
        raise Refusal("spec.timeZone" if zone else "spec.schedule", problem)
    try:
        expression = to_aws(text)
    except Refusal as refusal:
        raise Refusal("spec.schedule", refusal.reason) from None
    return expression, SourceSchedule(text, timezone, expression.startswith("cron("))


def _cron_job(source_file: str, origin: str, document: Any) -> ImportedCron:
    if not isinstance(document, dict):
        raise Refusal("", f"expected a Kubernetes object, got {type(document).__name__}")
    kind, api = document.get("kind"), document.get("apiVersion")
    if kind != "CronJob":
        raise Refusal("kind", f"{kind!r} is not a CronJob; only CronJob objects are imported")
    if api not in API_VERSIONS:
        raise Refusal("apiVersion", f"{api!r}: expected batch/v1")
    collected = Collector()
    metadata = document.get("metadata") or {}
    name = cron_name(metadata.get("name"), "metadata.name")
    drop_unknown(metadata, {"name"}, "metadata.", collected)
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise Refusal("spec", "missing")
    expression, source = schedule_and_zone(spec.get("schedule"), spec.get("timeZone"))
    zone = source.timezone
    job = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    pod = ((job.get("template") or {}).get("spec")) or {}
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise Refusal("spec.jobTemplate.spec.template.spec.containers", "no container")
    if len(containers) > 1:
        names = ", ".join(str(c.get("name")) for c in containers if isinstance(c, dict))
        raise Refusal("spec.jobTemplate.spec.template.spec.containers",
                      f"{len(containers)} containers ({names}); a cron runs one container")
    main = containers[0]
    where = "spec.jobTemplate.spec.template.spec.containers[0]"
    if not isinstance(main, dict) or not isinstance(main.get("image"), str):
        raise Refusal(f"{where}.image", "missing")
    arguments = None
    if "command" in main or "args" in main:
        arguments = (command(main["command"], f"{where}.command") if "command" in main
                     else []) + (command(main["args"], f"{where}.args") if "args" in main
                                 else [])
    if "command" in main:
        collected.drop(f"{where}.command", "overrides the image's ENTRYPOINT; cronctl's "
                       "arguments replace only its CMD: command + args were carried as "
                       "arguments (the same for images without an ENTRYPOINT)")
    env: dict[str, str] = {}
    for index, item in enumerate(main.get("env") or []):
        if not isinstance(item, dict) or "name" not in item:
            raise Refusal(f"{where}.env[{index}]", "expected {name, value}")
        if "valueFrom" in item:
            collected.drop(f"{where}.env.{item['name']}", "valueFrom (a Secret, ConfigMap or "
                           "field reference) cannot be read here; give it as container.secrets "
                           "(SSM parameter or Secrets Manager ARN)")
        else:
            env[str(item["name"])] = environment({"v": item.get("value", "")}, "env",
                                                 collected)["v"]
    drop_unknown(main, {"name", "image", "command", "args", "env", "imagePullPolicy"},
                 f"{where}.", collected)
    document_out: dict[str, Any] = {"schedule": expression}
    if zone != "UTC":
        document_out["timezone"] = zone
    document_out["container"] = container(main["image"], arguments, env, {})
    if "activeDeadlineSeconds" in job:
        document_out["timeout"] = timeout(positive_int(
            job["activeDeadlineSeconds"], "spec.jobTemplate.spec.activeDeadlineSeconds"),
            "spec.jobTemplate.spec.activeDeadlineSeconds")
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy not in CONCURRENCY:
        raise Refusal("spec.concurrencyPolicy", f"{policy!r}: expected Allow, Forbid or "
                                                "Replace")
    document_out["concurrency"] = CONCURRENCY[policy]
    if spec.get("suspend") is True:
        document_out["suspend"] = True
    if "startingDeadlineSeconds" in spec:
        collected.drop("spec.startingDeadlineSeconds", "how late a missed run may still start "
                       "is cronctl's catch-up window, not set per cron")
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        if key in spec:
            collected.drop(f"spec.{key}", "cronctl keeps every execution for the namespace's "
                           "history period")
    drop_unknown(spec, {"schedule", "timeZone", "jobTemplate", "concurrencyPolicy", "suspend",
                        "startingDeadlineSeconds", "successfulJobsHistoryLimit",
                        "failedJobsHistoryLimit"}, "spec.", collected)
    if "backoffLimit" in job:
        collected.drop("spec.jobTemplate.spec.backoffLimit",
                       "cronctl does not retry failed runs yet")
    drop_unknown(job, {"template", "activeDeadlineSeconds", "backoffLimit"},
                 "spec.jobTemplate.spec.", collected)
    if pod.get("restartPolicy") == "OnFailure":
        collected.drop("spec.jobTemplate.spec.template.spec.restartPolicy",
                       "OnFailure restarts the container; cronctl runs it once")
    drop_unknown(pod, {"containers", "restartPolicy"},
                 "spec.jobTemplate.spec.template.spec.", collected)
    return ImportedCron(name=name, source_file=source_file, origin=origin,
                        document=document_out,
                        schedule=source,
                        dropped=tuple(collected.dropped))

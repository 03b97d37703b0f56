"""EventBridge Scheduler: one schedule per cron in the group ``<ns>``.

Scheduler schedules carry no tags; ownership comes from the group, created and tagged by
cronctl (``managed-by=cronctl``, ``cronctl:namespace``), and from the registry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.desired import CRON_TAG, DesiredSchedule, ours_tags, utc_text
from reconciler.core.plan.model import ObservedSchedule
from reconciler.errors import Conflict, NotFound


def list_names(clients: AwsClients, group: str) -> list[dict]:
    """Summaries of every schedule in ``group`` ([] when the group does not exist)."""
    scheduler = clients.client("scheduler")
    found, kwargs = [], {"GroupName": group}
    while True:
        try:
            page = call_retrying(scheduler.list_schedules, **kwargs)
        except NotFound:
            return found
        found.extend(s for s in page.get("Schedules", []) if s.get("GroupName") == group)
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


def get(clients: AwsClients, group: str, name: str) -> dict | None:
    try:
        return call_retrying(clients.client("scheduler").get_schedule, GroupName=group, Name=name)
    except NotFound:
        return None


def group_tags(clients: AwsClients, region: str, account: str, group: str) -> dict[str, str]:
    arn = f"arn:aws:scheduler:{region}:{account}:schedule-group/{group}"
    try:
        page = call_retrying(clients.client("scheduler").list_tags_for_resource,
                             ResourceArn=arn)
    except NotFound:
        return {}
    return {t["Key"]: t["Value"] for t in page.get("Tags", [])}


def ensure_group(clients: AwsClients, namespace: str) -> None:
    """Create the tagged group ``<ns>`` unless it exists. Looked up first: AWS answers a
    duplicate create with ConflictException, but moto replaces the group (and drops its
    schedules)."""
    scheduler = clients.client("scheduler")
    try:
        call_retrying(scheduler.get_schedule_group, Name=namespace)
        return
    except NotFound:
        pass
    tag_map = ours_tags(namespace)
    try:
        call_retrying(scheduler.create_schedule_group, Name=namespace,
                      Tags=[{"Key": k, "Value": v} for k, v in sorted(tag_map.items())])
    except Conflict:
        return


def _date(value: object, *, future_only: bool = False) -> str | None:
    """A StartDate/EndDate as ``utc_text``; a StartDate already passed reads as None (it
    constrains nothing any more, and the desired state leaves passed starts out)."""
    if not isinstance(value, datetime):
        return None
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    if future_only and moment <= datetime.now(UTC):
        return None
    return utc_text(moment)


def observed(raw: dict, group_tag_map: dict | None) -> ObservedSchedule:
    target = raw.get("Target") or {}
    current = DesiredSchedule(
        backend="scheduler", name=raw["Name"], arn=raw["Arn"], group=raw.get("GroupName"),
        expression=raw.get("ScheduleExpression", ""),
        timezone=raw.get("ScheduleExpressionTimezone") or "UTC",
        state=raw.get("State", ""), description=raw.get("Description", ""),
        target_arn=target.get("Arn"), input=target.get("Input"),
        role_arn=target.get("RoleArn"),
        start_date=_date(raw.get("StartDate"), future_only=True),
        end_date=_date(raw.get("EndDate")),
        after_completion=raw.get("ActionAfterCompletion") if raw.get("ActionAfterCompletion")
        not in (None, "", "NONE") else None)
    tags = None
    if group_tag_map is not None:
        tags = {**group_tag_map, CRON_TAG: raw["Name"]}
    return ObservedSchedule(arn=raw["Arn"], current=current, tags=tags)


def listed(summary: dict) -> ObservedSchedule:
    """A schedule as ListSchedules shows it (state and target ARN; no tags: the registry
    accounts for it): a shallow observation (``deep`` False)."""
    current = DesiredSchedule(
        backend="scheduler", name=summary["Name"], arn=summary["Arn"],
        group=summary.get("GroupName"), expression="", timezone="UTC",
        state=summary.get("State", ""), description="",
        target_arn=(summary.get("Target") or {}).get("Arn"), input="")
    return ObservedSchedule(arn=summary["Arn"], current=current, tags=None, deep=False)


def _arguments(wanted: DesiredSchedule) -> dict:
    """CreateSchedule/UpdateSchedule arguments (an update replaces every field: the window
    and completion fields are sent each time, absent ones left out)."""
    extra: dict = {}
    if wanted.start_date:
        extra["StartDate"] = datetime.fromisoformat(wanted.start_date)
    if wanted.end_date:
        extra["EndDate"] = datetime.fromisoformat(wanted.end_date)
    if wanted.after_completion:
        extra["ActionAfterCompletion"] = wanted.after_completion
    return {
        "Name": wanted.name, "GroupName": wanted.group,
        "ScheduleExpression": wanted.expression,
        "ScheduleExpressionTimezone": wanted.timezone,
        "State": wanted.state, "Description": wanted.description,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": wanted.target_arn, "RoleArn": wanted.role_arn,
                   "Input": wanted.input},
        **extra,
    }


def put(clients: AwsClients, wanted: DesiredSchedule, exists: bool) -> str:
    """Create (or update, when ``exists``) the schedule; returns its ARN. A create that finds
    the schedule already there (a crash after create) becomes an update."""
    scheduler = clients.client("scheduler")
    if not exists:
        try:
            return call_retrying(scheduler.create_schedule, **_arguments(wanted))["ScheduleArn"]
        except Conflict:
            pass
    return call_retrying(scheduler.update_schedule, **_arguments(wanted))["ScheduleArn"]


def delete(clients: AwsClients, group: str, name: str) -> None:
    try:
        call_retrying(clients.client("scheduler").delete_schedule, GroupName=group, Name=name)
    except NotFound:
        return

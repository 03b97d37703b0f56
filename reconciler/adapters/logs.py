"""CloudWatch Logs: the log group the tasks' ``awslogs`` driver writes to, and its streams.

- ``ensure_log_group``: bootstrap's group with its retention;
- ``put_lines``: append lines to a stream (created when missing), as the ``awslogs`` driver
  does for a task; used by the embedded runner for the processes it runs;
- ``read_pages``: a stream's events from the head (or from a saved forward token), page by
  page, until GetLogEvents hands back the token it was given (the end, for now).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.log_streams import batches, to_events
from reconciler.errors import Conflict, NotFound


def _find_group(clients: AwsClients, name: str) -> dict | None:
    logs = clients.client("logs")
    response = call_retrying(logs.describe_log_groups, logGroupNamePrefix=name, limit=1)
    groups = [g for g in response["logGroups"] if g["logGroupName"] == name]
    return groups[0] if groups else None


def _group_arn(group: dict) -> str:
    return group.get("logGroupArn") or group["arn"].removesuffix(":*")


def ensure_log_group(clients: AwsClients, name: str, retention_days: int,
                     tags: dict[str, str]) -> tuple[str, str]:
    """Make log group ``name`` exist with ``retention_days``; ``(arn, created|found|updated)``."""
    logs = clients.client("logs")
    group = _find_group(clients, name)
    status = "found"
    if group is None:
        call_retrying(logs.create_log_group, logGroupName=name, tags=tags)
        status = "created"
    if group is None or group.get("retentionInDays") != retention_days:
        call_retrying(logs.put_retention_policy, logGroupName=name,
                      retentionInDays=retention_days)
        status = "created" if group is None else "updated"
    group = group or _find_group(clients, name)
    return _group_arn(group), status


def _create_stream(clients: AwsClients, group: str, stream: str) -> None:
    try:
        call_retrying(clients.client("logs").create_log_stream, logGroupName=group,
                      logStreamName=stream)
    except Conflict:
        pass  # created meanwhile: what we wanted


def put_lines(clients: AwsClients, group: str, stream: str, lines: Iterable[str],
              timestamp_ms: int | None = None) -> int:
    """Append the non-empty ``lines`` to ``group``/``stream``; the number of events sent.

    The stream is created when missing (the group must exist: ``NotFound`` otherwise). All
    lines get ``timestamp_ms`` (default: now). Batches respect PutLogEvents' limits.
    """
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    events = to_events(lines, stamp)
    logs = clients.client("logs")
    for batch in batches(events):
        try:
            call_retrying(logs.put_log_events, logGroupName=group, logStreamName=stream,
                          logEvents=batch)
        except NotFound:
            _create_stream(clients, group, stream)
            call_retrying(logs.put_log_events, logGroupName=group, logStreamName=stream,
                          logEvents=batch)
    return len(events)


def read_pages(clients: AwsClients, group: str, stream: str, token: str | None = None,
               limit: int | None = None) -> Iterator[tuple[list[dict], str]]:
    """``(events, next_forward_token)`` per GetLogEvents page, oldest first.

    Starts at the head, or after ``token`` (a ``next_forward_token`` from an earlier call, to
    get only what was added since). Stops when the service returns the token it was given.
    Raises ``NotFound`` when the stream (or group) does not exist.
    """
    logs = clients.client("logs")
    while True:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        if limit:
            kwargs["limit"] = limit
        page = call_retrying(logs.get_log_events, **kwargs)
        next_token = page["nextForwardToken"]
        if page["events"] or next_token != token:
            yield page["events"], next_token
        if next_token == token:
            return
        token = next_token

"""CloudWatch Logs naming and shaping for a task's output. Pure: no I/O.

- ``stream_name`` is the ONE place that names a task's log stream: the ``awslogs`` driver
  writes container ``main`` of task ``<id>`` to ``<prefix>/main/<id>``, where the prefix is
  the task definition's ``awslogs-stream-prefix`` (the namespace, see ``core/desired.py``).
  The local runner writes to the same name, so ``cronctl logs`` reads both the same way.
- ``pick_execution`` resolves what the user typed (nothing, a full id, or a unique prefix).
- ``batches`` / ``split_message`` keep PutLogEvents within AWS's limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.core.executions.records import MAIN_CONTAINER, Execution

# PutLogEvents limits: events per call, bytes per call (each event counts its UTF-8 message
# plus 26 bytes), bytes per event (the awslogs driver splits longer lines the same way).
MAX_EVENTS_PER_BATCH = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 262_144 - EVENT_OVERHEAD_BYTES
# Events in one PutLogEvents call may not span more than 24 hours.
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000


def task_id(task_arn: str) -> str:
    """The task id: last segment of ``arn:aws:ecs:<region>:<acct>:task/<cluster>/<id>``."""
    tail = task_arn.rsplit("/", 1)[-1].strip()
    if not tail or tail.startswith("arn:"):
        raise ValueError(f"not an ECS task ARN: {task_arn!r}")
    return tail


def stream_name(prefix: str, task_arn: str, container: str = MAIN_CONTAINER) -> str:
    """The log stream the ``awslogs`` driver writes ``container`` of this task to."""
    return f"{prefix}/{container}/{task_id(task_arn)}"


@dataclass(frozen=True)
class Choice:
    """Outcome of ``pick_execution``: the execution, or the error to show (never both)."""

    execution: Execution | None = None
    error: str | None = None


def pick_execution(cron: str, executions: Sequence[Execution], wanted: str | None) -> Choice:
    """The execution to show logs of, among ``executions`` (newest first) of ``cron``.

    No ``wanted``: the newest execution that has a task ARN. Else an exact id, or a unique
    prefix (a trailing ``...``, as ``status`` prints it, is ignored).
    """
    if wanted is None:
        for execution in executions:
            if execution.task_arn:
                return Choice(execution)
        if not executions:
            return Choice(error=f"cron {cron!r} has no executions yet")
        return Choice(error=f"no execution of {cron!r} has started a task yet")
    key = wanted.strip().removesuffix("...")
    if not key:
        return Choice(error="EXECUTION_ID must not be empty")
    exact = [e for e in executions if e.execution_id == key]
    if exact:
        return Choice(exact[0])
    matches = [e for e in executions if e.execution_id.startswith(key)]
    if len(matches) == 1:
        return Choice(matches[0])
    if not matches:
        return Choice(error=f"no execution of {cron!r} with id {wanted!r}")
    ids = ", ".join(e.execution_id for e in matches[:5])
    return Choice(error=f"execution id prefix {wanted!r} of {cron!r} is ambiguous: {ids}")


def no_task_reason(execution: Execution) -> str:
    """Why an execution without a task ARN has no logs."""
    why = f": {execution.reason}" if execution.reason else ""
    return (f"execution {execution.execution_id} never started a task "
            f"(status {execution.status}{why}), so it has no logs")


def format_event(event: dict, timestamps: bool) -> str:
    """One output line: the message, optionally after its UTC timestamp."""
    message = event.get("message", "").rstrip("\n")
    if not timestamps:
        return message
    moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp} {message}"


def split_message(line: str) -> list[str]:
    """``line`` in pieces of at most ``MAX_EVENT_BYTES`` UTF-8 bytes (whole characters)."""
    data = line.encode()
    if len(data) <= MAX_EVENT_BYTES:
        return [line]
    pieces, start = [], 0
    while start < len(data):
        end = min(start + MAX_EVENT_BYTES, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # not inside a character
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


def to_events(lines: Iterable[str], timestamp_ms: int) -> list[dict]:
    """PutLogEvents events of the non-empty lines (CloudWatch rejects empty messages)."""
    events = []
    for line in lines:
        text = line.rstrip("\r\n")
        if text:
            events += [{"timestamp": timestamp_ms, "message": p} for p in split_message(text)]
    return events


def batches(events: Sequence[dict]) -> list[list[dict]]:
    """Consecutive groups of events (in time order) that each fit one PutLogEvents call."""
    result: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for event in events:
        cost = len(event["message"].encode()) + EVENT_OVERHEAD_BYTES
        too_long = current and event["timestamp"] - current[0]["timestamp"] > MAX_BATCH_SPAN_MS
        if current and (len(current) >= MAX_EVENTS_PER_BATCH or size + cost > MAX_BATCH_BYTES
                        or too_long):
            result.append(current)
            current, size = [], 0
        current.append(event)
        size += cost
    if current:
        result.append(current)
    return result


def complete_lines(buffer: bytes, final: bool) -> tuple[list[str], int]:
    """The whole lines in ``buffer`` and how many bytes they used; all of it when ``final``."""
    end = len(buffer) if final else buffer.rfind(b"\n") + 1
    if end <= 0:
        return [], 0
    text = buffer[:end].decode(errors="replace")
    return text.splitlines(), end

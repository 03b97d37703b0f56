"""SQS: the queue of ECS task state change events and its dead-letter queue.

Lookups are by name (``GetQueueUrl``). A queue that exists with other attribute values than
wanted is set back to them ("updated"); its messages are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.infra.attributes import differing
from reconciler.errors import NotFound


@dataclass(frozen=True)
class QueueState:
    """A queue as ensured: its URL, ARN and what was done ("created" | "found" | "updated")."""

    url: str
    arn: str
    status: str


def ensure_queue(clients: AwsClients, name: str, attributes: dict[str, str],
                 tags: dict[str, str]) -> QueueState:
    """Make the standard queue ``name`` exist with ``attributes`` (other attributes untouched)."""
    sqs = clients.client("sqs")
    try:
        url = call_retrying(sqs.get_queue_url, QueueName=name)["QueueUrl"]
    except NotFound:
        url = call_retrying(sqs.create_queue, QueueName=name, Attributes=attributes,
                            tags=tags)["QueueUrl"]
        return QueueState(url, _queue_arn(clients, url), "created")
    current = call_retrying(sqs.get_queue_attributes, QueueUrl=url,
                            AttributeNames=["All"])["Attributes"]
    changes = differing(current, attributes)
    if changes:
        call_retrying(sqs.set_queue_attributes, QueueUrl=url, Attributes=changes)
    return QueueState(url, current["QueueArn"], "updated" if changes else "found")


def _queue_arn(clients: AwsClients, url: str) -> str:
    response = call_retrying(clients.client("sqs").get_queue_attributes, QueueUrl=url,
                             AttributeNames=["QueueArn"])
    return response["Attributes"]["QueueArn"]

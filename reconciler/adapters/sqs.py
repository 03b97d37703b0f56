"""The namespace's ECS events queue: receive, delete, change visibility; send (embedded mode)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.adapters.aws import AwsClients, call, call_retrying
from reconciler.settings import Settings

MAX_BATCH = 10


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1


class EventQueue:
    """SQS operations on ``<ns>-ecs-events``; the queue URL is looked up once."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._sqs = clients.client("sqs")
        self._name = settings.queue_name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = call_retrying(self._sqs.get_queue_url, QueueName=self._name)["QueueUrl"]
        return self._url

    def receive(self, max_messages: int = MAX_BATCH, wait_s: int = 20,
                visibility_timeout_s: int | None = None) -> list[QueueMessage]:
        """One (long-polling) ReceiveMessage; not retried, the caller loops anyway."""
        kwargs = {"QueueUrl": self.url, "MaxNumberOfMessages": min(max_messages, MAX_BATCH),
                  "WaitTimeSeconds": wait_s, "MessageSystemAttributeNames": ["ApproximateReceiveCount"]}
        if visibility_timeout_s is not None:
            kwargs["VisibilityTimeout"] = visibility_timeout_s
        response = call(self._sqs.receive_message, **kwargs)
        return [QueueMessage(m["MessageId"], m["ReceiptHandle"], m.get("Body", ""),
                             int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)))
                for m in response.get("Messages", [])]

    def delete(self, messages: list[QueueMessage]) -> list[str]:
        """Delete in batches; returns the ids of messages that could not be deleted."""
        failed: list[str] = []
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start:start + MAX_BATCH]
            response = call_retrying(self._sqs.delete_message_batch, QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)])
            failed += [chunk[int(f["Id"])].message_id for f in response.get("Failed", [])]
        return failed

    def change_visibility(self, message: QueueMessage, seconds: int) -> None:
        call_retrying(self._sqs.change_message_visibility, QueueUrl=self.url,
                      ReceiptHandle=message.receipt_handle, VisibilityTimeout=seconds)


def queue_url(clients: AwsClients, queue_name: str) -> str:
    """The URL of the named queue (``GetQueueUrl``)."""
    return call_retrying(clients.client("sqs").get_queue_url, QueueName=queue_name)["QueueUrl"]


def send_message(clients: AwsClients, url: str, body: str) -> None:
    """One ``SendMessage`` to the queue at ``url``."""
    call_retrying(clients.client("sqs").send_message, QueueUrl=url, MessageBody=body)

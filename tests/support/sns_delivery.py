"""SNS deliveries to a daemon's ``POST /sns``, made the way SNS makes them: a signed
Notification (signed by the test signer, whose certificate the daemon trusts through
``CRONCTL_SNS_CERTS``) carrying a cron's scheduled time, posted as ``text/plain`` with SNS's
``x-amz-sns-*`` headers; and SNS's redelivery of the same message while the endpoint answers
5xx or does not answer.

    sns = SnsDelivery(topic_arn)
    body = sns.notification("hello", "2026-11-27T10:05:00Z")   # signed, Timestamp = now
    sns.post(daemon.sns_url, body)                  # one attempt: (status, body text)
    sns.deliver(daemon.sns_url, body)               # with redeliveries: [(status, body), ...]

``deliver`` stops at the first answer SNS counts as delivered (200-499) and retries on 5xx,
a connection error or a timeout (recorded as status 0 with the error's description), with a
short exponential backoff, bounded by ``attempts`` and by ``within_s`` in all.
``on_answer(attempt, status, body)`` is called after each answer (a test can change the world
between attempts); ``stop`` (an Event) ends the loop early.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from tests.support.sns import TestSigner

SNS_USER_AGENT = "Amazon Simple Notification Service Agent"


class SnsDelivery:
    """Signs and delivers Notifications of ``topic_arn``; see the module docstring."""

    def __init__(self, topic_arn: str, signer: TestSigner | None = None) -> None:
        self.topic_arn = topic_arn
        self.signer = signer or TestSigner()
        self.subscription_arn = f"{topic_arn}:{uuid.uuid4()}"

    def notification(self, cron: str, scheduled_at: str, *, message_id: str | None = None,
                     sent_at: datetime | None = None, **fields) -> bytes:
        """The signed Notification body of a schedule's message for ``cron``."""
        message = json.dumps({"cron": cron, "scheduled_at": scheduled_at, **fields})
        signed = self.signer.message("Notification", self.topic_arn,
                                     sent_at or datetime.now(UTC), Message=message,
                                     MessageId=message_id or str(uuid.uuid4()))
        return json.dumps(signed).encode()

    def headers(self, body: bytes) -> dict[str, str]:
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        return {"Content-Type": "text/plain; charset=UTF-8", "User-Agent": SNS_USER_AGENT,
                "x-amz-sns-message-type": str(message.get("Type", "Notification")),
                "x-amz-sns-message-id": str(message.get("MessageId", "")),
                "x-amz-sns-topic-arn": self.topic_arn,
                "x-amz-sns-subscription-arn": self.subscription_arn}

    def post(self, url: str, body: bytes, timeout: float = 15.0) -> tuple[int, str]:
        """One delivery attempt: (status, body text), or (0, error) when nothing came back."""
        split = urllib.parse.urlsplit(url)
        if split.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"deliveries go to loopback only, not {url!r}")
        connection = http.client.HTTPConnection(split.hostname, split.port or 80,
                                                timeout=timeout)
        try:
            connection.request("POST", split.path or "/", body=body, headers=self.headers(body))
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    def deliver(self, url: str, body: bytes, *, attempts: int = 4, within_s: float = 30.0,
                backoff_s: float = 0.1, max_backoff_s: float = 1.0, timeout: float = 15.0,
                on_answer: Callable[[int, int, str], None] | None = None,
                stop: threading.Event | None = None) -> list[tuple[int, str]]:
        """Deliver with redeliveries; every answer, in order (see the module docstring)."""
        deadline = time.monotonic() + within_s
        pause = stop or threading.Event()
        answers: list[tuple[int, str]] = []
        for attempt in range(1, attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            status, text = self.post(url, body, timeout=min(timeout, remaining))
            answers.append((status, text))
            if on_answer is not None:
                on_answer(attempt, status, text)
            if delivered(status) or attempt == attempts:
                break
            delay = min(max_backoff_s, backoff_s * 2 ** (attempt - 1))
            if delay >= deadline - time.monotonic() or pause.wait(delay):
                break
        return answers


def delivered(status: int) -> bool:
    """SNS counts 200-499 as delivered; 5xx and no answer are retried."""
    return 200 <= status < 500


def answer_json(answer: tuple[int, str]) -> dict:
    """The JSON body of an answer (``{}`` when it is not JSON)."""
    try:
        parsed = json.loads(answer[1])
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}

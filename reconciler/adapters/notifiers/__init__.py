"""Notifiers: a decided ``Notice`` delivered to Slack or PagerDuty over HTTPS.

``deliver(notice)`` returns on success and raises ``TransientError`` (timeouts, connection
errors, 429, 5xx, Slack ``ratelimited``) or ``PermanentError`` (other 4xx, a refusing Slack:
``invalid_auth``, ``channel_not_found``...; no way to reach the notifier configured), each
with a message that says what to fix. ``Notifiers`` picks the one a notice names.
"""

from __future__ import annotations

from reconciler.adapters.notifiers.pagerduty import PagerDuty
from reconciler.adapters.notifiers.slack import Slack
from reconciler.core.alerts.model import PAGERDUTY, SLACK, Notice
from reconciler.errors import PermanentError
from reconciler.settings import Settings


class Notifiers:
    """The process's notifiers, from its settings (secrets and endpoints)."""

    def __init__(self, settings: Settings, session=None) -> None:
        self.slack = Slack(settings, session)
        self.pagerduty = PagerDuty(settings, session)

    def deliver(self, notice: Notice) -> None:
        if notice.notifier == SLACK:
            self.slack.deliver(notice)
        elif notice.notifier == PAGERDUTY:
            self.pagerduty.deliver(notice)
        else:
            raise PermanentError(f"unknown notifier {notice.notifier!r}")

    def close(self) -> None:
        self.slack.close()
        self.pagerduty.close()

"""PagerDuty routing keys as a cron file may give them (pure; the loader checks them)."""

from __future__ import annotations

import re

ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}\Z")
SERVICE_URI = re.compile(r"^https://events\.pagerduty\.com/integration/([A-Za-z0-9]{32})/enqueue/?\Z")


# -- PagerDuty routing keys --------------------------------------------------------------

def pagerduty_problem(value: str) -> str | None:
    """None when ``value`` is a routing key or the documented service URI, else why not."""
    if ROUTING_KEY.match(value) or SERVICE_URI.match(value):
        return None
    if value.startswith("https://"):
        return ("a PagerDuty service URI must be of the form "
                "https://events.pagerduty.com/integration/<32-character routing key>/enqueue; "
                "or give the 32-character routing key (integration key) itself")
    return "must be a 32-character PagerDuty routing key (integration key)"


def routing_key(value: str | None) -> str | None:
    """The routing key a cron's ``notifications.pagerduty`` names; None when none."""
    if not value:
        return None
    if ROUTING_KEY.match(value):
        return value
    match = SERVICE_URI.match(value)
    return match.group(1) if match else None

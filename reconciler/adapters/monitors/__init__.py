"""Monitoring services' HTTP APIs (Cronitor, Healthchecks.io): the only code that calls them.

``client_for(provider, api_url, api_key, timeout_s)`` gives the service's ``MonitorClient``
(list, get, create, update, delete the namespace's monitors; typed ``ObservedMonitor``s out)
and ``pinger_for`` its pings. Errors are ``reconciler.errors``: ``TransientError`` (timeouts,
connection errors, 429, 5xx), ``MonitorAuthError`` (401/403), ``NotFound``, ``PermanentError``.
"""

from __future__ import annotations

from reconciler.adapters.monitors.cronitor import CronitorClient, CronitorPings
from reconciler.adapters.monitors.healthchecks import HealthchecksClient, HealthchecksPings
from reconciler.adapters.monitors.http import MonitorAuthError
from reconciler.core.monitors.model import CRONITOR, HEALTHCHECKS

MonitorClient = CronitorClient | HealthchecksClient


def client_for(provider: str, api_url: str, api_key: str, timeout_s: float) -> MonitorClient:
    if provider == CRONITOR:
        return CronitorClient(api_url, api_key, timeout_s)
    if provider == HEALTHCHECKS:
        return HealthchecksClient(api_url, api_key, timeout_s)
    raise ValueError(f"unknown monitoring service {provider!r}")


def pings_for(provider: str, ping_base: str, api_key: str | None, timeout_s: float):
    if provider == CRONITOR:
        return CronitorPings(ping_base, api_key or "", timeout_s)
    if provider == HEALTHCHECKS:
        return HealthchecksPings(ping_base, timeout_s)
    raise ValueError(f"unknown monitoring service {provider!r}")


__all__ = ["CronitorClient", "HealthchecksClient", "MonitorAuthError", "MonitorClient",
           "client_for", "pings_for"]

"""The namespace's monitors at its monitoring service: read them for a pass (observe) and
change them (apply), through ``reconciler.adapters.monitors``.

Observe makes as few calls as the service allows: Healthchecks ``GET
/api/v3/checks/?tag=cronctl-ns-<ns>``, Cronitor ``GET /api/monitors?tag=cronctl-ns:<ns>``
(paged), plus one GET per monitor the registry records that the list did not return. Nothing
is read when the namespace has no monitoring service and the registry tracks no monitor.
Without an API key, with a refused key, or with the service down or slow, the observation
carries one error: the plan then changes no monitor (and deletes none).
"""

from __future__ import annotations

from reconciler.adapters.monitors import MonitorAuthError, MonitorClient, client_for
from reconciler.core.monitors.model import PROVIDERS, SERVICE_NAMES, MonitorObservation
from reconciler.core.plan.monitors import MONITORS_UNREAD
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import CronctlError
from reconciler.settings import MONITOR_URLS, Settings

NO_KEY = "CRONCTL_MONITOR_API_KEY is not set: monitors were neither read nor changed"


def api_url(settings: Settings, provider: str) -> str:
    """The management API of ``provider``: the namespace's ``monitor_url`` when ``provider`` is
    the namespace's service (or the namespace has none any more: the registry's monitors are
    deleted where they were made), else the public one."""
    if provider == settings.monitor or settings.monitor == "none":
        return (settings.monitor_url or MONITOR_URLS[provider]).rstrip("/")
    return MONITOR_URLS[provider]


def client(settings: Settings, provider: str) -> MonitorClient:
    return client_for(provider, api_url(settings, provider), settings.monitor_api_key or "",
                      settings.notify_timeout_s)


def observe_monitors(settings: Settings,
                     registry: dict[str, RegistryItem]) -> MonitorObservation:
    provider = settings.monitor
    tracked = any(item.monitor_id for item in registry.values())
    if provider not in PROVIDERS and not tracked:
        return MonitorObservation(provider)
    if not settings.monitor_api_key:
        return MonitorObservation(provider, error=NO_KEY)
    if provider not in PROVIDERS:
        return MonitorObservation(provider)  # only deletes by the registry's ids: none read
    service = SERVICE_NAMES[provider]
    api = client(settings, provider)
    try:
        found = api.list(settings.namespace)
        ids = {m.id for m in found}
        for item in registry.values():
            if item.monitor_provider == provider and item.monitor_id \
                    and item.monitor_id not in ids:
                extra = api.get(item.monitor_id)
                if extra is not None:
                    found.append(extra)
                    ids.add(extra.id)
    except MonitorAuthError as exc:
        return MonitorObservation(provider, error=(
            f"{MONITORS_UNREAD}{exc}; monitors were neither read nor changed"))
    except CronctlError as exc:
        return MonitorObservation(provider, error=(
            f"{MONITORS_UNREAD}{service} could not be read ({exc}): no monitor changed "
            "this pass"))
    finally:
        api.close()
    return MonitorObservation(provider, tuple(found))


class MonitorWriter:
    """The monitor writes of one apply (one client per service, made when first needed)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, MonitorClient] = {}

    def _client(self, provider: str) -> MonitorClient:
        if provider not in self._clients:
            self._clients[provider] = client(self.settings, provider)
        return self._clients[provider]

    def create(self, desired):
        return self._client(desired.provider).create(desired.fields)

    def update(self, monitor_id: str, desired):
        return self._client(desired.provider).update(monitor_id, desired.fields)

    def delete(self, provider: str, monitor_id: str) -> None:
        self._client(provider).delete(monitor_id)

    def close(self) -> None:
        for api in self._clients.values():
            api.close()

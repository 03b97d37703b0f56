"""The namespace's recorded settings: read once at start by every command and the daemon.

``cronctl bootstrap`` records them (``adapters.registry.write_namespace``); ``resolve`` reads
them (one GetItem) and returns the Settings to use: the recorded namespace settings, with
the flags, variables and defaults of this process for everything else. A flag or variable
that contradicts a recorded value is refused with the command that changes it. A namespace
bootstrapped before settings were recorded falls back to flags, variables and defaults, with
one warning.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients
from reconciler.errors import ConfigError, NamespaceSettingsChanged, NotFound
from reconciler.settings import NamespaceSettings, Settings, flag_text


def no_record_warning(namespace: str) -> str:
    return (f"namespace {namespace!r} has no recorded settings: using flags, CRONCTL_* "
            f"variables and defaults; run `cronctl bootstrap --namespace {namespace}` to "
            "record them, so that every command and the daemon agree")


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(none)"
    if value is None:
        return "(default)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def contradictions(settings: Settings, recorded: NamespaceSettings) -> list[str]:
    """The keys of the namespace settings given (flag or variable) that differ from
    ``recorded``."""
    mine, theirs = settings.namespace_settings.flat(), recorded.flat()
    return [key for key in settings.given if mine.get(key) != theirs.get(key)]


def refusal(settings: Settings, recorded: NamespaceSettings, keys: list[str]) -> str:
    theirs, mine = recorded.flat(), settings.namespace_settings.flat()
    records = ", ".join(f"{key}={_shown(theirs[key])}" for key in keys)
    given = ", ".join(settings.given[key] for key in keys)
    change = " ".join(flag_text(key, mine[key]) for key in keys)
    return (f"namespace {settings.namespace!r} records {records}; {given} contradicts it. "
            f"To change it: cronctl bootstrap --namespace {settings.namespace} {change}")


def resolve(clients: AwsClients, settings: Settings,
            warn: Callable[[str], None] | None = None) -> Settings:
    """The settings to use: see the module docstring. A namespace not bootstrapped at all
    (no registry table) leaves ``settings`` as they are: the command says so its own way."""
    try:
        record = registry.read_namespace(clients, settings)
    except NotFound:
        return settings
    if record is None:
        if warn is not None:
            warn(no_record_warning(settings.namespace))
        return settings.with_(recorded_version=0)
    recorded = NamespaceSettings.from_record(record.settings)
    keys = contradictions(settings, recorded)
    if keys:
        raise ConfigError(refusal(settings, recorded, keys))
    return settings.with_(namespace_settings=recorded, recorded_version=record.version)


def check_unchanged(settings: Settings, record: registry.NamespaceRecord | None) -> None:
    """A pass of a process that read the namespace's settings at start refuses to go on when
    they were changed since (``cronctl bootstrap``): the process must be restarted."""
    if settings.recorded_version is None:
        return
    now = record.version if record else 0
    if now != settings.recorded_version:
        raise NamespaceSettingsChanged(
            f"the settings of namespace {settings.namespace!r} changed since this process "
            f"started (version {settings.recorded_version} -> {now}): nothing changed; "
            "cronctl serve restarts its components with them, another command must be run "
            "again")

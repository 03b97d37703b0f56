"""Flags shared by several commands, and building Settings from parsed arguments.

Every flag's ``--help`` says its ``CRONCTL_*`` variable and its default (``settings.OPTIONS``).
The commands that talk to AWS read the namespace's recorded settings once at start
(``namespace_settings``): a flag or variable that contradicts them is refused.
"""

from __future__ import annotations

import argparse
import sys

from reconciler.settings import OPTION, RECORDED, Settings, from_environment, help_text


def _add(group, key: str, **kwargs) -> None:
    group.add_argument(OPTION[key].flag, dest=key, help=help_text(key), **kwargs)


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source")
    for key in ("repo", "ref", "path"):
        _add(group, key)


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "enabled", "on"):
        return True
    if value in ("0", "false", "no", "disabled", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")


def _url(raw: str) -> str:
    """An http(s):// URL, as the CRONCTL_* variables of the same settings are checked."""
    value = raw.strip()
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(f"expected an http(s):// URL, got {raw!r}")
    return value.rstrip("/")


def _ids(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def add_aws_flags(parser: argparse.ArgumentParser) -> None:
    """--namespace and every namespace setting (recorded by ``cronctl bootstrap``)."""
    group = parser.add_argument_group(
        "namespace settings", "recorded in the namespace by cronctl bootstrap; on other "
        "commands a value that contradicts the recorded one is refused")
    _add(group, "namespace")
    extra = {
        "scheduler": {"choices": ["rules", "scheduler"]},
        "launch_type": {"choices": ["FARGATE", "EC2", "EXTERNAL"]},
        "capacity_providers": {"action": "append", "metavar": "NAME[:WEIGHT[:BASE]]"},
        "subnets": {"type": _ids, "metavar": "IDS"},
        "security_groups": {"type": _ids, "metavar": "IDS"},
        "assign_public_ip": {"type": _boolean, "metavar": "true|false"},
        "execution_role_arn": {"metavar": "ARN"},
        "default_task_role_arn": {"metavar": "ARN"},
        "scheduler_role_arn": {"metavar": "ARN"},
        "rules_quota": {"type": int, "metavar": "N"},
        "api_rates": {"action": "append", "metavar": "NAME=RATE[/BURST]"},
        "monitor": {"choices": ["none", "cronitor", "healthchecks"]},
        "monitor_url": {"type": _url, "metavar": "URL"},
        "monitor_ping_url": {"type": _url, "metavar": "URL"},
    }
    for key in RECORDED:
        _add(group, key, **extra.get(key, {}))


def add_output_flag(parser: argparse.ArgumentParser, choices=("text", "json")) -> None:
    parser.add_argument("--output", choices=list(choices), default="text", help="output format (default text)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    names = ("repo", "ref", "path", "namespace", "listen", *RECORDED)
    flags = {name: getattr(args, name, None) for name in names}
    for name in ("interval_s", "drift_check_s", "deep_check_s", "history_days", "max_deletes",
                 "allow_mass_delete"):
        value = getattr(args, name, None)
        if value is not None:
            flags[name] = value
    return from_environment(**flags)


def namespace_settings(clients, settings: Settings, command: str) -> Settings:
    """``settings`` with the namespace's recorded settings (one GetItem); a contradicting
    flag or variable raises ConfigError; no record: a warning on stderr, flags and defaults."""
    from reconciler.service.namespace import resolve

    return resolve(clients, settings, warn=lambda text: print(
        f"cronctl {command}: warning: {text}", file=sys.stderr))

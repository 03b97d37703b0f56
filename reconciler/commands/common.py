"""Flags shared by several commands, and building Settings from parsed arguments."""

from __future__ import annotations

import argparse

from reconciler.settings import Settings, from_environment


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source")
    group.add_argument("--repo", help="the repo: a local path, an https://, ssh://, git:// or "
                       "file:// URL, or user@host:path (env CRONCTL_REPO; default .)")
    group.add_argument("--ref", help="branch, tag or commit SHA (env CRONCTL_REF; default HEAD)")
    group.add_argument("--path", help="folder of cron files in the repo (env CRONCTL_PATH; default crons.d)")


def add_aws_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment")
    group.add_argument("--namespace", help="deployment name prefixing every resource (env CRONCTL_NAMESPACE; default crons)")
    group.add_argument("--scheduler", choices=["rules", "scheduler"],
                       help="schedule backend: EventBridge rules or EventBridge Scheduler (env CRONCTL_SCHEDULER; default rules)")
    group.add_argument("--cluster", help="ECS cluster name (env CRONCTL_CLUSTER; default: the namespace)")


def add_output_flag(parser: argparse.ArgumentParser, choices=("text", "json")) -> None:
    parser.add_argument("--output", choices=list(choices), default="text", help="output format (default text)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    names = ("repo", "ref", "path", "namespace", "scheduler", "listen", "cluster")
    flags = {name: getattr(args, name, None) for name in names}
    for name in ("interval_s", "history_days", "max_deletes", "allow_mass_delete"):
        value = getattr(args, name, None)
        if value is not None:
            flags[name] = value
    return from_environment(**flags)

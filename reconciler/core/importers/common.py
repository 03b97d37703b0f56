"""Helpers shared by the source converters: names, commands, environments, durations."""

from __future__ import annotations

import re
import shlex
from typing import Any

from reconciler.core.cronfile.cron_fields import name_problem
from reconciler.core.importers.model import Collector, Refusal

MAX_TIMEOUT_S = 365 * 86400


def cron_name(raw: object, field: str) -> str:
    """A cron name from a job's name: lower case, ``_``/``.``/spaces as ``-``."""
    if not isinstance(raw, str) or not raw.strip():
        raise Refusal(field, f"a job name is needed, got {raw!r}")
    name = re.sub(r"[^a-z0-9-]+", "-", raw.strip().lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if problem := name_problem(name):
        raise Refusal(field, f"{raw!r} cannot become a cron name: {problem}")
    return name


def command(value: object, field: str) -> list[str]:
    """A command given as a list of strings or as one string (split like a shell)."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as error:
            raise Refusal(field, f"cannot split {value!r} into arguments: {error}") from None
    elif isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        words = [str(item) for item in value]
    else:
        raise Refusal(field, f"expected a string or a list of strings, got {value!r}")
    if not words:
        raise Refusal(field, "the command is empty")
    return words


def scalar_text(value: Any) -> str | None:
    """How a YAML scalar reads as an environment value; ``None`` for maps and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def environment(raw: object, field: str, collected: Collector) -> dict[str, str]:
    """A ``NAME: value`` map; values that are not plain scalars are reported, not kept."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Refusal(field, f"expected a map of NAME: value, got {type(raw).__name__}")
    env: dict[str, str] = {}
    for key, value in raw.items():
        text = scalar_text(value)
        if text is None:
            collected.drop(f"{field}.{key}", f"{value!r} is not a plain value; cronctl env "
                                             "values are strings")
        else:
            env[str(key)] = text
    return env


def duration_text(seconds: int) -> str | int:
    """``5400`` -> ``90m``: the largest unit that divides it."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def timeout(seconds: float, field: str) -> str | int:
    if seconds != int(seconds) or seconds < 1:
        raise Refusal(field, f"{seconds} s: cronctl timeouts are whole seconds, at least 1")
    if seconds > MAX_TIMEOUT_S:
        raise Refusal(field, f"{int(seconds)} s is more than cronctl's maximum timeout (365d)")
    return duration_text(int(seconds))


def container(image: str, arguments: list[str] | None, env: dict[str, str],
              secrets: dict[str, str], cpu: int | None = None,
              memory: int | None = None) -> dict[str, Any]:
    """The ``container:`` section, in the canonical order, without empty parts."""
    section: dict[str, Any] = {"image": image}
    if arguments:
        section["arguments"] = arguments
    if env:
        section["env"] = env
    if secrets:
        section["secrets"] = secrets
    capacity = {key: value for key, value in (("cpu", cpu), ("memory", memory)) if value}
    if capacity:
        section["capacity"] = capacity
    return section


def drop_unknown(raw: dict, known: set[str], prefix: str, collected: Collector,
                 reason: str = "cronctl has no equivalent") -> None:
    """Report every key of ``raw`` that the converter does not carry over."""
    for key in raw:
        if key not in known:
            collected.drop(f"{prefix}{key}", reason)


def positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or \
            not str(value).isdigit() or int(value) < 1:
        raise Refusal(field, f"expected a positive whole number, got {value!r}")
    return int(value)

"""Durations in cron files: whole seconds, or a whole number with a unit (``90s``, ``15m``,
``2h``, ``1d``). Always more than 0 and at most ``MAX_SECONDS``."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 365 * 86400
_PATTERN = re.compile(r"^([0-9]+)([smhd]?)$")
_HINT = "a duration is seconds or a number with a unit: 90s, 15m, 2h, 1d"


def parse_duration(value: object) -> int:
    """Seconds in ``value``; raises ``ValueError`` with a specific message when invalid."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a duration, got {type_name(value)} {value!r}; {_HINT}")
    if isinstance(value, int):
        seconds = value
    else:
        match = _PATTERN.match(value.strip())
        if not match:
            raise ValueError(f"'{value}' is not a duration; {_HINT}")
        seconds = int(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"must be more than 0, got {value!r}; {_HINT}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"must be at most 365d ({MAX_SECONDS} seconds), got {value!r}")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest exact form: 86400 -> '1d', 5400 -> '90m', 61 -> '61s'."""
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def type_name(value: object) -> str:
    """The YAML name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__

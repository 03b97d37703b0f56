"""Checks and conversions of single cron-file fields that a JSON Schema cannot express well:
names, time zones, env values, T-shirt sizes and Fargate (cpu, memory) pairs.

Each check returns a specific message (``None`` when the value is fine); conversions return
the converted value or raise ``ValueError`` with a specific message.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from functools import lru_cache

from reconciler.core.cronfile.durations import type_name
from reconciler.core.spec import (
    FARGATE_MEMORY,
    NAME_PATTERN,
    TSHIRT_SIZES,
    Capacity,
    capacity_of,
    fargate_memory_allowed,
)

MAX_NAME_LENGTH = 64
_NAME = re.compile(NAME_PATTERN)
_SIZES = ", ".join(TSHIRT_SIZES)


def suggestion(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the nearest choice, or ``''``."""
    nearest = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not nearest:
        lowered = {choice.lower(): choice for choice in choices}
        nearest = [lowered[word.lower()]] if word.lower() in lowered else []
    return f" (did you mean '{nearest[0]}'?)" if nearest else ""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a cron's name, or ``None``."""
    if _NAME.fullmatch(name):  # whole: "hello\n" is not a name
        return None
    rule = ("lower-case letters, digits and '-', starting and ending with a letter or digit, "
            f"at most {MAX_NAME_LENGTH} characters")
    if not name:
        return f"name must not be empty ({rule})"
    if len(name) > MAX_NAME_LENGTH:
        return f"name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    if name != name.lower() and _NAME.fullmatch(name.lower()):
        return f"name '{name}' must be lower case: use '{name.lower()}'"
    shown = f"'{name}'" if name.isprintable() else repr(name)  # "hello\n" stays on one line
    return f"name {shown} is not valid: {rule}"


# Names a zoneinfo folder may hold that are not zones a cron can be run in: ``localtime``
# is the machine's own setting, ``Factory`` the "no zone set" placeholder.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


def timezone_problem(value: object) -> str | None:
    """Why ``value`` is not a known IANA time zone, or ``None``."""
    if not isinstance(value, str):
        return f"must be an IANA time zone name like 'Europe/Berlin', got {type_name(value)}"
    if value in _zones():
        return None
    return (f"unknown time zone '{value}'{suggestion(value, _zones())}; "
            "use an IANA name like 'Europe/Berlin' or 'UTC'")


def env_value_problem(key: str, value: object) -> str | None:
    """Env values must be strings; YAML turns unquoted 2000 or true into other types."""
    if isinstance(value, str):
        return None
    if value is None:
        return f"env value of '{key}' is empty (null); write {key}: \"\" for an empty string"
    if isinstance(value, dict | list):
        return f"env value of '{key}' must be a string, got {type_name(value)}"
    text = ("true" if value else "false") if isinstance(value, bool) else value
    return (f"env value of '{key}' must be a string, got {type_name(value)} {text}; "
            f"quote it: {key}: \"{text}\"")


def _units(value: object, what: str, index: int) -> int:
    """CPU units or MiB from a T-shirt size or a number."""
    if isinstance(value, str):
        if value in TSHIRT_SIZES:
            return TSHIRT_SIZES[value][index]
        if value.isdigit():
            raise ValueError(f"the number of {what} must not be quoted: write {value}, "
                             f"not '{value}'")
        raise ValueError(f"unknown size '{value}'{suggestion(value, TSHIRT_SIZES)}; "
                         f"use {_SIZES} or a number of {what}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a size ({_SIZES}) or a number of {what}, "
                         f"got {type_name(value)}")
    return value


def allowed_memory(cpu: int) -> str:
    """The memory Fargate accepts with ``cpu`` units, for messages."""
    if cpu == 256:
        return "512, 1024 or 2048 MiB"
    low, high, step = FARGATE_MEMORY[cpu]
    values = list(range(low, high + 1, step))
    if len(values) <= 8:
        return ", ".join(str(v) for v in values[:-1]) + f" or {values[-1]} MiB"
    return f"{low} to {high} MiB in steps of {step}"


def resolve_capacity(capacity: dict) -> tuple[Capacity | None, dict[str, str]]:
    """(cpu, memory) with defaults applied; or ``None`` and a message per key (cpu/memory).

    Defaults: nothing given -> XS. Only cpu -> the memory of that size, or the smallest
    memory Fargate allows for that many units. Only memory -> the smallest CPU that allows it.
    """
    problems: dict[str, str] = {}
    cpu = memory = None
    if "cpu" in capacity:
        try:
            cpu = _units(capacity["cpu"], "CPU units", 0)
            if cpu not in FARGATE_MEMORY:
                units = ", ".join(str(u) for u in FARGATE_MEMORY)
                raise ValueError(f"Fargate has no {cpu} CPU units; use {units} or a size")
        except ValueError as error:
            problems["cpu"] = str(error)
    if "memory" in capacity:
        try:
            memory = _units(capacity["memory"], "MiB", 1)
        except ValueError as error:
            problems["memory"] = str(error)
    if problems:
        return None, problems
    if cpu is None and memory is None:
        return capacity_of(*TSHIRT_SIZES["XS"]), {}
    if memory is None:
        size = capacity["cpu"]
        memory = TSHIRT_SIZES[size][1] if isinstance(size, str) else FARGATE_MEMORY[cpu][0]
    if cpu is None:
        cpu = next((units for units in FARGATE_MEMORY if fargate_memory_allowed(units, memory)),
                   None)
        if cpu is None:
            return None, {"memory": f"no Fargate CPU size allows {memory} MiB of memory"}
    if not fargate_memory_allowed(cpu, memory):
        where = "memory" if "memory" in capacity else "cpu"
        return None, {where: f"{memory} MiB of memory is not allowed with {cpu} CPU units; "
                             f"Fargate allows {allowed_memory(cpu)} with {cpu} CPU units"}
    return capacity_of(cpu, memory), {}

"""The cron file's JSON Schema, and its errors turned into specific, located messages.

The schema (``schemas/cron.schema.json``, shipped in the package) is the structural
contract: types, allowed keys, patterns. ``schema_problems`` yields one ``FieldProblem`` per
violation, with the path of the offending key or value, in words a cron author understands.
Fields that ``reconciler.core.cronfile.loader`` checks itself with more specific messages (see
``checked_elsewhere``) are left to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from reconciler.core.cronfile.cron_fields import suggestion
from reconciler.core.cronfile.durations import type_name

CONTAINER_KEYS = ("container", "description")

# Plain-words explanations of the schema's patterns, by the last key of the path.
_PATTERN_HINTS = {
    "role": "must be an IAM role ARN like arn:aws:iam::123456789012:role/my-job",
    "slack": "must be a Slack channel like '#team' (lower case, starting with '#')",
    "pagerduty": "must be a PagerDuty routing key (32 letters and digits) or an https:// URI",
    "docs": "must be an http:// or https:// link",
    "rule": "must be an EventBridge rule name: 1 to 64 letters, digits, '.', '_' or '-'",
    "image": "must be an image reference without spaces, at most 255 characters",
    "secrets": "must be an SSM parameter name or ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)"
               " or a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:"
               "secret:NAME)",
}
_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "an integer", "boolean": "true or false", "number": "a number"}


@dataclass(frozen=True)
class FieldProblem:
    """A problem at ``path`` (a tuple of keys/indexes); ``at_key`` points at the key."""

    path: tuple
    message: str
    at_key: bool = False


@lru_cache(maxsize=1)
def cron_schema() -> dict:
    """The cron file schema, read from the package."""
    text = (resources.files("reconciler") / "schemas" / "cron.schema.json").read_text("utf-8")
    return json.loads(text)


def _whole_pattern(validator, pattern: str, instance, _schema) -> Iterator[ValidationError]:
    r"""``pattern`` as JSON Schema (ECMA-262) means it: Python's ``$`` also matches before a
    final newline, so ``"busybox\n"`` would pass ``^[^\s]{1,255}$``. A final ``$`` is read
    as the end of the string."""
    if not validator.is_type(instance, "string"):
        return
    anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") \
        else pattern
    if not re.search(anchored, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_CronValidator = validators.extend(Draft202012Validator, {"pattern": _whole_pattern})


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return _CronValidator(cron_schema())


def checked_elsewhere(path: tuple) -> bool:
    """Paths whose values the loader checks itself, with more specific messages."""
    if path in {("name",), ("schedule",), ("timezone",), ("timeout",),
                ("notifications", "no-run-threshold"),
                ("notifications", "ran-longer-than-threshold"),
                ("active", "from"), ("active", "until")}:
        return True
    if path in {("retries", "backoff"), ("catch-up",)}:     # retries and catch-up (issue 11)
        return True
    if len(path) == 3 and path[0] in CONTAINER_KEYS:
        return path[1:] in {("capacity", "cpu"), ("capacity", "memory")} or path[1] == "env"
    return False


def schema_problems(document: dict) -> Iterator[FieldProblem]:
    """Every schema violation of ``document`` as a located, plain-words problem."""
    seen: set[FieldProblem] = set()
    for error in _validator().iter_errors(document):
        path = tuple(error.absolute_path)
        if checked_elsewhere(path) and "propertyNames" not in error.schema_path:
            continue
        for problem in _explain(error, path, document):
            if problem not in seen:
                seen.add(problem)
                yield problem


def _explain(error: ValidationError, path: tuple, document: dict) -> list[FieldProblem]:
    keyword = error.validator
    value = error.instance
    if "propertyNames" in error.schema_path:
        return [FieldProblem((*path, value), f"'{value}' is not a valid environment variable "
                             "name (letters, digits and '_', not starting with a digit)", True)]
    if keyword == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extras = [key for key in value if key not in known]
        if not known:  # a mapping of free keys whose values are wrong (env, secrets)
            return []
        return [FieldProblem((*path, key), f"unknown field '{key}'{suggestion(key, known)}",
                             True) for key in extras]
    if keyword == "oneOf" and path == ():
        return [_container_problem(document)]
    if keyword == "required":
        missing = [key for key in error.validator_value if key not in value]
        return [FieldProblem(path, f"missing required field '{key}'", bool(path))
                for key in missing]
    if keyword == "type":
        wanted = error.validator_value
        wanted = wanted if isinstance(wanted, list) else [wanted]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
        hint = ""
        if wanted == ["string"] and isinstance(value, int | float) and len(path) >= 2:
            hint = f"; quote it: \"{str(value).lower()}\""
        return [FieldProblem(path, f"must be {words}, got {_shown(value)}{hint}")]
    if keyword == "enum":
        choices = [str(choice) for choice in error.validator_value]
        hint = suggestion(value, choices) if isinstance(value, str) else ""
        return [FieldProblem(path, f"must be one of {', '.join(choices)}; got "
                                   f"{_shown(value)}{hint}")]
    if keyword == "pattern":
        hint_key = path[-2] if len(path) >= 2 and path[-2] == "secrets" else path[-1]
        hint = _PATTERN_HINTS.get(str(hint_key), f"must match {error.validator_value}")
        return [FieldProblem(path, f"{hint}; got {value!r}")]
    if keyword == "minItems":
        return [FieldProblem(path, "must not be an empty list; leave it out to use the "
                                   "image's default command")]
    if keyword == "minLength":
        return [FieldProblem(path, "must not be empty")]
    return [FieldProblem(path, error.message)]


def _container_problem(document: dict) -> FieldProblem:
    present = [key for key in CONTAINER_KEYS if key in document]
    if len(present) == 2:
        later = list(document).index("container") > list(document).index("description")
        return FieldProblem(("container",) if later else ("description",),
                            "'description' and 'container' are both given; use one "
                            "('container' is the canonical name of the legacy "
                            "'description')", True)
    return FieldProblem((), "missing the container: add 'container:' with at least 'image:'")


def _shown(value: object) -> str:
    if isinstance(value, dict | list):
        return type_name(value)
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    if value is None:
        text = "nothing (null)"
        return text
    return f"{type_name(value)} {text[:60]}"

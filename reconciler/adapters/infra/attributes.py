"""Comparing AWS attribute values the way AWS means them, for the idempotent ``ensure_*`` calls.

AWS hands back JSON documents (queue policies, redrive policies, event patterns) re-serialised:
key order, whitespace, one-element lists collapsed to a scalar and numbers quoted may all differ
from what was sent, and a stack (deploy/cloudformation.yaml) writes equivalent policies with
other labels (``Id``, ``Sid``). ``canonical`` maps a value to a form where those differences
vanish, so an unchanged resource is reported "found" and never rewritten.
"""

from __future__ import annotations

import json
from typing import Any


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        items = [_normalise(item) for item in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _policy(document: dict) -> dict:
    """A policy document (queue, topic, IAM) without the labels that do not change what it
    allows: its ``Id`` and its statements' ``Sid``; a lone statement as a list of one. The
    rest (statements in any order, a single value or a list of one, key order) is left to
    ``_normalise``."""
    statements = document["Statement"]
    if not isinstance(statements, list):
        statements = [statements]
    statements = [{k: v for k, v in s.items() if k != "Sid"} if isinstance(s, dict) else s
                  for s in statements]
    return {**{k: v for k, v in document.items() if k != "Id"}, "Statement": statements}


def canonical(value: Any) -> Any:
    """A comparable form of an attribute value; strings holding a JSON object are parsed, and
    a policy document is compared by what it allows (``_policy``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                return value
    if isinstance(value, dict) and "Statement" in value:
        value = _policy(value)
    return _normalise(value)


def differing(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``desired`` whose value differs (canonically) from ``current``."""
    return {key: value for key, value in desired.items()
            if key not in current or canonical(current[key]) != canonical(value)}


def as_json(document: dict) -> str:
    """A JSON document (policy, redrive policy, event pattern) as the string AWS takes."""
    return json.dumps(document, separators=(",", ":"))

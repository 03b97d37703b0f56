"""Comparing AWS attribute values the way AWS means them, for the idempotent ``ensure_*`` calls.

AWS hands back JSON documents (queue policies, redrive policies, event patterns) re-serialised:
key order, whitespace, one-element lists collapsed to a scalar and numbers quoted may all differ
from what was sent. ``canonical`` maps a value to a form where those differences vanish, so an
unchanged resource is reported "found" and never rewritten.
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


def canonical(value: Any) -> Any:
    """A comparable form of an attribute value; strings holding a JSON object are parsed."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                return _normalise(json.loads(text))
            except ValueError:
                return value
    return _normalise(value)


def differing(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``desired`` whose value differs (canonically) from ``current``."""
    return {key: value for key, value in desired.items()
            if key not in current or canonical(current[key]) != canonical(value)}


def as_json(document: dict) -> str:
    """A JSON document (policy, redrive policy, event pattern) as the string AWS takes."""
    return json.dumps(document, separators=(",", ":"))

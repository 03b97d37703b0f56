"""JSON from outside (HTTP bodies, SQS messages), parsed only within bounds.

``json.loads`` recurses once per nesting level: a 100,000-deep array raises ``RecursionError``
(not ``ValueError``), which escapes the usual error handling and can take a whole batch or
connection down with it. ``loads_bounded`` measures size and nesting depth first, in one linear
scan that does not recurse, and raises ``JsonRefused`` (a ``ValueError``) for anything that
cannot be parsed within the bounds.
"""

from __future__ import annotations

import json

MAX_DEPTH = 64
MAX_BYTES = 1024 * 1024


class JsonRefused(ValueError):
    """Text that is not JSON, or JSON beyond the size or nesting bounds."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (no recursion, linear time)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_bounded(data: str | bytes, *, max_depth: int = MAX_DEPTH,
                  max_bytes: int = MAX_BYTES):
    """``json.loads`` of ``data``; ``JsonRefused`` when it is not UTF-8 JSON, is over
    ``max_bytes`` or nests deeper than ``max_depth``."""
    if data is None:
        raise JsonRefused("no JSON document")
    if len(data) > max_bytes:
        raise JsonRefused(f"JSON document over {max_bytes} bytes")
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRefused(f"not UTF-8: {exc}") from exc
    if not isinstance(data, str):
        raise JsonRefused(f"not a JSON text: {type(data).__name__}")
    if nesting_depth(data) > max_depth:
        raise JsonRefused(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise JsonRefused(f"not JSON: {exc}") from exc

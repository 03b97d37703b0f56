"""Cron files in the legacy format (``description:`` for the container) rewritten to the
canonical one (``container:``), everything else, comments included, kept as written."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from reconciler.core.cronfile.yaml_lines import parse
from reconciler.core.importers.model import ImportedCron, ImportResult, Refused, SourceSchedule

_KEY = re.compile(r"^description(\s*):")


def convert(relative_path: str, text: str, shown_as: str) -> ImportResult:
    """One file, rewritten line by line; a file already canonical comes back unchanged
    (``origin`` says so); one that is not a mapping of fields is refused."""
    parsed = parse(text)
    if parsed.problems or not isinstance(parsed.value, dict):
        reason = parsed.problems[0].message if parsed.problems else "not a mapping of fields"
        return ImportResult(refused=(Refused(shown_as, "", "", f"not a cron file: {reason}"),))
    document = parsed.value
    name = document.get("name") or PurePosixPath(relative_path).stem
    lines = text.splitlines(keepends=True)
    if "description" in document:
        at = parsed.position(("description",), key=True)
        line = lines[at.line - 1]
        if at.column != 1 or not _KEY.match(line):
            return ImportResult(refused=(Refused(shown_as, "", "description", "cannot rewrite "
                                                 f"line {at.line} in place"),))
        lines[at.line - 1] = _KEY.sub(r"container\1:", line, count=1)
        origin = "legacy 'description:' rewritten as 'container:'"
    else:
        origin = "already canonical"
    canonical = dict(document)
    if "description" in canonical:
        canonical["container"] = canonical.pop("description")
    expression = document.get("schedule")
    return ImportResult(crons=(ImportedCron(
        name=str(name), source_file=shown_as, origin=origin, document=canonical,
        schedule=SourceSchedule(expression if isinstance(expression, str) else ""),
        relative_path=relative_path, body="".join(lines)),))

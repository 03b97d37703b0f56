"""An imported cron as the text of its cron file: a comment naming where it came from and
what was not carried over, then the canonical document."""

from __future__ import annotations

import yaml

from reconciler.core.importers.model import ImportedCron


def _line(text: str) -> str:
    return " ".join(text.split())


def header(cron: ImportedCron) -> list[str]:
    where = f"{cron.source_file}, {cron.origin}" if cron.origin else cron.source_file
    lines = [f"# Imported by cronctl import from {_line(where)}"]
    if cron.dropped:
        lines.append("# Not carried over:")
        lines += [f"#   {_line(item.field)}: {_line(item.reason)}" for item in cron.dropped]
    return lines


def render(cron: ImportedCron, body: str | None = None) -> str:
    """The file's text; ``body`` replaces the dumped document (legacy rewrites keep theirs)."""
    if body is None:
        body = yaml.safe_dump(cron.document, sort_keys=False, default_flow_style=False,
                              allow_unicode=True, width=100)
    return "\n".join(header(cron)) + "\n" + body

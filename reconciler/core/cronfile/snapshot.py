"""What a source (Git commit or directory) hands to the core: file texts, not files."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.core.cronfile.diagnostics import Diagnostic


@dataclass(frozen=True)
class Snapshot:
    """The cron files of one source read.

    ``files`` maps a path relative to the repo root (e.g. ``crons.d/team/job.yaml``) to its raw
    bytes. ``refused`` holds one diagnostic per file that was not read (symlink leaving the
    repo, too large, ...): such a file holds back its own cron only. ``commit`` is the full
    SHA for a Git source, ``None`` for a plain directory.
    """

    commit: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    refused: tuple[Diagnostic, ...] = ()

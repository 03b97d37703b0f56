"""The importers' data: what was imported, what was not carried over, what was refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Refusal(ValueError):
    """One job cannot be imported faithfully: ``field`` (dotted, in the source) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Dropped:
    """A source field that could not be carried over, and why."""

    field: str
    reason: str


@dataclass(frozen=True)
class SourceSchedule:
    """The schedule as the source tool evaluates it: a standard 5-field cron in ``timezone``
    (checked against the result's fire times), or an AWS expression carried over unchanged."""

    expression: str
    timezone: str = "UTC"
    five_field: bool = False


@dataclass(frozen=True)
class AdoptTarget:
    """The live schedule an imported cron came from (``cronctl import aws --adopt``)."""

    kind: str                      # "rule" or "schedule"
    name: str
    arn: str
    group: str | None = None       # Scheduler schedule group


@dataclass(frozen=True)
class ImportedCron:
    """One job converted to a cron file document (canonical keys, insertion-ordered)."""

    name: str
    source_file: str               # the file (or AWS account/region) it came from
    origin: str                    # the job inside it: "job 'x'", a rule ARN, ...
    document: dict[str, Any]
    schedule: SourceSchedule
    dropped: tuple[Dropped, ...] = ()
    adopt: AdoptTarget | None = None
    relative_path: str = ""        # where to write under --out; default "<name>.yaml"
    body: str | None = None        # the file's own text (legacy rewrites keep comments)

    @property
    def path(self) -> str:
        return self.relative_path or f"{self.name}.yaml"


@dataclass(frozen=True)
class Refused:
    """A job (or a whole file) that was not imported: nothing is written for it."""

    source_file: str
    origin: str
    field: str
    reason: str
    name: str | None = None

    def __str__(self) -> str:
        where = f"{self.source_file}: {self.origin}" if self.origin else self.source_file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass(frozen=True)
class ImportResult:
    crons: tuple[ImportedCron, ...] = ()
    refused: tuple[Refused, ...] = ()

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(self.crons + other.crons, self.refused + other.refused)


@dataclass
class Collector:
    """Builds one job's document and its dropped fields (used inside a converter)."""

    dropped: list[Dropped] = field(default_factory=list)

    def drop(self, field_name: str, reason: str) -> None:
        self.dropped.append(Dropped(field_name, reason))

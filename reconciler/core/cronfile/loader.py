"""Cron files -> ``CronSpec`` models, with every error located at its file, line and field.

``load_file`` reads one file; ``load_snapshot`` reads every cron file of a source read and
adds what needs all files at once (unique names). Every error of every file is reported;
nothing stops at the first. A file that is invalid in any way yields no spec and *holds back*
its cron: the control plane leaves that cron's live resources as they are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from reconciler.core.alerts.routing import pagerduty_problem
from reconciler.core.cronfile.calendars import (
    Calendar,
    calendar_folder,
    calendar_name,
    is_calendar_file,
    load_calendar,
)
from reconciler.core.cronfile.cron_fields import (
    env_value_problem,
    name_problem,
    resolve_capacity,
    timezone_problem,
)
from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.core.cronfile.durations import format_duration, parse_duration, type_name
from reconciler.core.cronfile.parse_cache import ParseCache
from reconciler.core.cronfile.schema_errors import CONTAINER_KEYS, FieldProblem, schema_problems
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.cronfile.yaml_lines import Position, parse
from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule import window as active_window
from reconciler.core.schedule.gaps import shortest_gap_s
from reconciler.core.spec import (
    DEFAULT_BACKOFF_S,
    DEFAULT_TIMEOUT_S,
    MIN_BACKOFF_S,
    ActiveWindow,
    ContainerSpec,
    CronSpec,
    Replaces,
    RetryPolicy,
    notifications_of,
)

MAX_FILE_BYTES = 256 * 1024
CRON_SUFFIXES = (".yaml", ".yml")
_THRESHOLDS = {"no-run-threshold": "no_run_threshold_s",
               "ran-longer-than-threshold": "ran_longer_than_threshold_s"}


@dataclass(frozen=True)
class LoadResult:
    """What the cron files of one source say.

    ``specs``: the valid crons, sorted by name. ``diagnostics``: every error of every file,
    sorted. ``held_back``: names of crons whose file exists but is invalid (or whose name is
    used by more than one file); their live resources must be kept as they are. ``files``:
    name -> file of each valid spec. A name is never both in ``specs`` and ``held_back``.
    """

    specs: tuple[CronSpec, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    held_back: frozenset[str] = frozenset()
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


@dataclass(slots=True)
class _FileResult:
    file: str
    name: str                      # the readable `name:`, else the file stem
    name_position: Position
    spec: CronSpec | None
    diagnostics: list[Diagnostic]
    calendars: tuple[str, ...] = ()  # the calendars its ``exclude:`` names (cache keys)


def is_cron_file(path: str, cron_path: str = "crons.d") -> bool:
    """True for ``.yaml``/``.yml`` files at or under ``cron_path`` (``""``/``"."``: anywhere)."""
    folder = cron_path.strip().removeprefix("./").rstrip("/")
    inside = folder in ("", ".") or path == folder or path.startswith(folder + "/")
    # Calendar files (``<cron path>/calendars/*.yaml``) are not crons.
    return inside and path.lower().endswith(CRON_SUFFIXES) and \
        not path.startswith(calendar_folder(cron_path) + "/")


def load_file(path: str, data: bytes, calendars: dict[str, Calendar | None] | None = None
              ) -> tuple[CronSpec | None, list[Diagnostic]]:
    """The spec in one file, or ``None`` and every error found in it (sorted).
    ``calendars``: name -> calendar (None: its file is invalid) for ``exclude:``."""
    result = _read(path, data, calendars or {}, calendar_folder("crons.d"))
    return result.spec, sorted(result.diagnostics)


def load_snapshot(snapshot: Snapshot, cron_path: str = "crons.d",
                  calendar_dir: str | None = None, *,
                  cache: ParseCache | None = None) -> LoadResult:
    """Every cron file of ``snapshot`` under ``cron_path``; see ``LoadResult``. The calendars
    that ``exclude:`` names are read from ``<cron path>/calendars/`` of the same snapshot
    (``calendar_dir``: another folder, e.g. when the crons are files named one by one).
    ``cache``: per-file results of earlier loads (``ParseCache``), so that only the files that
    changed (or whose calendars did) are parsed; the result is the same as without it."""
    folder = calendar_dir or calendar_folder(cron_path)
    calendars, diagnostics = load_calendars(snapshot, folder, cache=cache)
    paths = [path for path in sorted(snapshot.files)
             if is_cron_file(path, cron_path) and not path.startswith(folder + "/")]
    if cache is None:
        results = [_read(path, snapshot.files[path], calendars, folder) for path in paths]
    else:
        results = [cache.cron(path, data, folder, calendars,
                              lambda path=path, data=data: _read(path, data, calendars, folder))
                   for path in paths for data in (snapshot.files[path],)]
        cache.retain(paths, [path for path in snapshot.files if is_calendar_file(path, folder)])
    diagnostics += list(snapshot.refused)
    # A refused cron file holds back its cron; a refused folder link (``up -> ..``) is
    # reported but names no cron.
    held_back = {PurePosixPath(d.file).stem for d in snapshot.refused
                 if d.file.lower().endswith(CRON_SUFFIXES)
                 and not d.file.startswith(folder + "/")}
    by_name: dict[str, list[_FileResult]] = defaultdict(list)
    for result in results:
        by_name[result.name].append(result)
        diagnostics.extend(result.diagnostics)
        if result.spec is None:
            held_back.add(result.name)
    for name, same in by_name.items():
        if len(same) < 2:
            continue
        held_back.add(name)
        files = ", ".join(result.file for result in same)
        for result in same:
            at = result.name_position
            diagnostics.append(Diagnostic(result.file, at.line, at.column, "name",
                                          f"name '{name}' is used by {len(same)} files "
                                          f"({files}); names must be unique"))
    specs = sorted((r.spec for r in results if r.spec and r.spec.name not in held_back),
                   key=lambda spec: spec.name)
    return LoadResult(specs=tuple(specs), diagnostics=tuple(sorted(set(diagnostics))),
                      held_back=frozenset(held_back),
                      files={spec.name: spec.file for spec in specs})


def load_calendars(snapshot: Snapshot, folder: str = "crons.d/calendars", *,
                   cache: ParseCache | None = None
                   ) -> tuple[dict[str, Calendar | None], list[Diagnostic]]:
    """The calendar files in ``folder`` of ``snapshot`` (name -> calendar, None when its file
    is invalid) and their errors; two files of one name are both invalid. ``cache``: see
    ``load_snapshot``."""
    calendars: dict[str, Calendar | None] = {}
    files: dict[str, list[str]] = defaultdict(list)
    diagnostics: list[Diagnostic] = []
    for path, data in sorted(snapshot.files.items()):
        if not is_calendar_file(path, folder):
            continue
        calendar, problems = load_calendar(path, data) if cache is None else \
            cache.calendar(path, data, lambda path=path, data=data: load_calendar(path, data))
        files[calendar_name(path)].append(path)
        calendars[calendar_name(path)] = calendar
        diagnostics += problems
    for refused in snapshot.refused:
        if is_calendar_file(refused.file, folder):
            calendars[calendar_name(refused.file)] = None
    for name, paths in files.items():
        if len(paths) > 1:
            calendars[name] = None
            diagnostics += [Diagnostic(path, 1, 1, "", f"calendar '{name}' is given by "
                                       f"{len(paths)} files ({', '.join(paths)})")
                            for path in paths]
    return calendars, diagnostics


def _read(path: str, data: bytes, calendars: dict[str, Calendar | None],
          calendar_dir: str) -> _FileResult:
    stem = PurePosixPath(path).stem
    result = _FileResult(path, stem, Position(1, 1), None, [])

    def fail(line: int, column: int, message: str, where: str = "") -> _FileResult:
        result.diagnostics.append(Diagnostic(path, line, column, where, message))
        return result

    if len(data) > MAX_FILE_BYTES:
        return fail(1, 1, f"file is {len(data)} bytes; cron files are limited to "
                          f"{MAX_FILE_BYTES} bytes (256 KiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        start = error.start
        line_start = data.rfind(b"\n", 0, start) + 1
        return fail(data.count(b"\n", 0, start) + 1, start - line_start + 1,
                    f"not valid UTF-8 at byte {start}")
    parsed = parse(text)
    for problem in parsed.problems:
        fail(problem.position.line, problem.position.column, problem.message,
             _dotted(problem.path))
    if parsed.empty:
        return fail(1, 1, "file is empty; a cron file needs at least 'schedule' and "
                          "'container' (with 'image')")
    document = parsed.value
    if not isinstance(document, dict):
        if not parsed.problems:
            at = parsed.position(())
            fail(at.line, at.column, "a cron file must be a mapping of fields (schedule, "
                                     f"container, ...), got {type_name(document)}")
        return result
    excluded = document.get("exclude")
    if isinstance(excluded, list):
        result.calendars = tuple(name for name in excluded if isinstance(name, str))
    if isinstance(document.get("name"), str):
        result.name = document["name"]
        result.name_position = parsed.position(("name",))
    problems = list(schema_problems(document)) + _field_problems(document, stem) + \
        _exclude_problems(document, calendars, calendar_dir)
    unreliable = [problem.path for problem in parsed.problems if problem.path]
    for problem in problems:
        if any(problem.path[:len(bad)] == bad for bad in unreliable):
            continue  # already reported as a YAML problem at this path
        at = parsed.position(problem.path, key=problem.at_key)
        if problem.path == ("name",) and "name" not in document:
            at = Position(1, 1)  # the name comes from the file name
        fail(at.line, at.column, problem.message, _dotted(problem.path))
    if not result.diagnostics:
        result.spec = _build(document, path, stem, calendars)
    return result


def _field_problems(document: dict, stem: str) -> list[FieldProblem]:
    """The checks the schema cannot express; each runs only on values of the right shape."""
    problems: list[FieldProblem] = []
    name = document.get("name", stem)
    if isinstance(name, str) and (message := name_problem(name)):
        if "name" not in document:
            shown = f"'{stem}'" if stem.isprintable() else repr(stem)
            message += f" (the name comes from the file name {shown}; set 'name:' to choose)"
        problems.append(FieldProblem(("name",), message))
    elif not isinstance(name, str):
        problems.append(FieldProblem(("name",), f"must be a string, got {type_name(name)}"))
    if "schedule" in document:
        expression = document["schedule"]
        if not isinstance(expression, str):
            problems.append(FieldProblem(("schedule",), "must be a string like "
                                         "'cron(0 12 * * ? *)' or 'rate(5 minutes)', got "
                                         f"{type_name(expression)}"))
        else:
            problems += [FieldProblem(("schedule",), message)
                         for message in schedule.validate(expression)]
    if "timezone" in document and (message := timezone_problem(document["timezone"])):
        problems.append(FieldProblem(("timezone",), message))
    durations = [(("timeout",), document["timeout"])] if "timeout" in document else []
    notifications = document.get("notifications")
    if isinstance(notifications, dict):
        durations += [(("notifications", key), notifications[key])
                      for key in _THRESHOLDS if key in notifications]
        pagerduty = notifications.get("pagerduty")
        if isinstance(pagerduty, str) and (message := pagerduty_problem(pagerduty)):
            problems.append(FieldProblem(("notifications", "pagerduty"), message))
    for path, value in durations:
        try:
            parse_duration(value)
        except ValueError as error:
            problems.append(FieldProblem(path, str(error)))
    for key in CONTAINER_KEYS:
        container = document.get(key)
        if isinstance(container, dict):
            problems += _container_problems(key, container)
    problems += _active_problems(document)
    problems += _retry_and_catch_up_problems(document)
    return problems


def _active_problems(document: dict) -> list[FieldProblem]:
    """``active:``: each bound a date or date-time, ``until`` not before ``from``."""
    active = document.get("active")
    if not isinstance(active, dict):
        return []
    problems = []
    for key in ("from", "until"):
        if key in active:
            try:
                active_window.parse_bound(active[key])
            except ValueError as error:
                problems.append(FieldProblem(("active", key), str(error)))
    timezone = document.get("timezone", "UTC")
    if problems or timezone_problem(timezone) or not set(active) <= {"from", "until"}:
        return problems
    message = active_window.window_problem(_active_of(active), timezone)
    return [FieldProblem(("active", "until"), message)] if message else []


def _active_of(active: dict) -> ActiveWindow:
    text = {key: active_window.bound_text(active_window.parse_bound(active[key]))
            for key in ("from", "until") if key in active}
    return ActiveWindow(start=text.get("from"), until=text.get("until"))


def _exclude_problems(document: dict, calendars: dict[str, Calendar | None],
                      folder: str) -> list[FieldProblem]:
    """Each calendar ``exclude:`` names must exist and be valid."""
    names = document.get("exclude")
    if not isinstance(names, list):
        return []
    problems = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name not in calendars:
            problems.append(FieldProblem(("exclude", index), f"no calendar '{name}': "
                                         f"expected the file {folder}/{name}.yaml"))
        elif calendars[name] is None:
            problems.append(FieldProblem(("exclude", index), f"calendar '{name}' is invalid "
                                         "(see its file's errors); this cron is held back"))
    return problems


# -- retries and catch-up (issue 11) ---------------------------------------------------------
def _retry_and_catch_up_problems(document: dict) -> list[FieldProblem]:
    """``retries.backoff`` at least 10 s; it and ``catch-up`` not longer than the shortest gap
    between two fire times (a retried or late run would reach the next one); ``retries.on``
    includes ``failure``. Shapes (``attempts`` 1-10, durations) are the schema's."""
    problems: list[FieldProblem] = []
    expression, zone = document.get("schedule"), document.get("timezone", "UTC")
    gap = shortest_gap_s(expression, zone) \
        if isinstance(expression, str) and isinstance(zone, str) else None
    limits: list[tuple[tuple, object]] = []
    retries = document.get("retries")
    if isinstance(retries, dict):
        on = retries.get("on")
        if isinstance(on, list) and on and set(on) <= {"timeout"}:
            problems.append(FieldProblem(("retries", "on"), "must include 'failure' "
                                         "('timeout' is retried only with it)"))
        if "backoff" in retries:
            limits.append((("retries", "backoff"), retries["backoff"]))
    if "catch-up" in document:
        limits.append((("catch-up",), document["catch-up"]))
    for path, value in limits:
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            problems.append(FieldProblem(path, str(error)))
            continue
        what = "a retry" if path[0] == "retries" else "a late run"
        if path[0] == "retries" and seconds < MIN_BACKOFF_S:
            problems.append(FieldProblem(path, f"must be at least {MIN_BACKOFF_S}s, got "
                                         f"{value!r}"))
        elif gap is not None and seconds > gap:
            problems.append(FieldProblem(path, (
                f"{format_duration(seconds)} is longer than the shortest gap between two "
                f"fire times of the schedule ({format_duration(gap)}): {what} would reach "
                f"the next scheduled run; at most {format_duration(gap)}")))
    return problems


def _retry_policy(document: dict) -> RetryPolicy | None:
    retries = document.get("retries")
    if not isinstance(retries, dict):
        return None
    return RetryPolicy(attempts=retries["attempts"],
                       backoff_s=parse_duration(retries["backoff"]) if "backoff" in retries
                       else DEFAULT_BACKOFF_S,
                       on_timeout="timeout" in (retries.get("on") or ()))


def _container_problems(key: str, container: dict) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    env = container.get("env")
    if isinstance(env, dict):
        for name, value in env.items():
            if message := env_value_problem(name, value):
                problems.append(FieldProblem((key, "env", name), message))
    capacity = container.get("capacity")
    if isinstance(capacity, dict):
        for which, message in resolve_capacity(capacity)[1].items():
            problems.append(FieldProblem((key, "capacity", which), message))
    return problems


def _build(document: dict, path: str, stem: str,
           calendars: dict[str, Calendar | None]) -> CronSpec:
    """The spec of a document that passed every check, with defaults applied."""
    raw = document.get("container") or document["description"]
    capacity, _ = resolve_capacity(raw.get("capacity") or {})
    arguments = raw.get("arguments")
    notifications = document.get("notifications") or {}
    thresholds = {attribute: parse_duration(notifications[key])
                  for key, attribute in _THRESHOLDS.items() if key in notifications}
    return CronSpec(
        name=document.get("name", stem),
        file=path,
        schedule=document["schedule"],
        timezone=document.get("timezone", "UTC"),
        container=ContainerSpec(
            image=raw["image"],
            arguments=tuple(arguments) if arguments is not None else None,
            env=tuple(sorted((raw.get("env") or {}).items())),
            secrets=tuple(sorted((raw.get("secrets") or {}).items())),
            capacity=capacity,
        ),
        role=document.get("role"),
        timeout_s=parse_duration(document["timeout"]) if "timeout" in document
        else DEFAULT_TIMEOUT_S,
        concurrency=document.get("concurrency", "forbid"),
        suspend=document.get("suspend", False),
        notifications=notifications_of(slack=notifications.get("slack"),
                                       pagerduty=notifications.get("pagerduty"),
                                       alert_after=notifications.get("alert-after", 1),
                                       **thresholds),
        docs=(document.get("meta") or {}).get("docs"),
        replaces=Replaces(rule=document["replaces"]["rule"]) if "replaces" in document
        else None,
        active=_active_of(document["active"]) if "active" in document else None,
        # -- calendars and pause (issue 11) --
        exclude=tuple(calendars[name].exclusion() for name in document.get("exclude") or ()),
        suspend_after_failures=document.get("suspend-after-failures"),
        # -- retries and catch-up (issue 11) --
        retries=_retry_policy(document),
        catch_up_s=parse_duration(document["catch-up"]) if "catch-up" in document else None,
    )


def _dotted(path: tuple) -> str:
    """``("container", "env", "X")`` -> ``container.env.X``; list indexes as ``[2]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


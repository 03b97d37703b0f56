"""``load_snapshot(cache=)``: a cached load is the uncached load, and parses only what changed
(issue 10)."""

from __future__ import annotations

import pytest

from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.core.cronfile.loader import load_snapshot
from reconciler.core.cronfile.parse_cache import ParseCache
from reconciler.core.cronfile.snapshot import Snapshot

CAL = "crons.d/calendars/holidays.yaml"


def cron(schedule: str = "rate(5 minutes)", extra: str = "") -> bytes:
    return f'schedule: "{schedule}"\ncontainer:\n  image: busybox\n{extra}'.encode()


EXCLUDING = cron("cron(0 9 * * ? *)", "exclude: [holidays]\n")
BASE = {"crons.d/a.yaml": cron(), "crons.d/b.yaml": cron("rate(1 hour)"),
        "crons.d/team/c.yaml": EXCLUDING, "crons.d/d.yaml": cron(extra="exclude: [nope]\n"),
        CAL: b"dates: [2026-12-25]\n"}


def changed(**edits: bytes | None) -> dict[str, bytes]:
    """BASE with files replaced (``a="..."``: ``crons.d/a.yaml``) or removed (None)."""
    files = dict(BASE)
    for key, data in edits.items():
        path = CAL if key == "cal" else f"crons.d/{key.replace('__', '/')}.yaml"
        if data is None:
            files.pop(path, None)
        else:
            files[path] = data
    return files


SEQUENCES = {
    "unchanged": [BASE, BASE],
    "one file changed": [BASE, changed(a=cron("rate(2 minutes)"))],
    "file removed, then back": [BASE, changed(b=None), BASE],
    "file added": [BASE, changed(e=cron())],
    "calendar changed": [BASE, changed(cal=b"dates: [2026-12-24..2026-12-26]\n")],
    "calendar made invalid, then fixed": [BASE, changed(cal=b"dates: [2026-13-01]\n"), BASE],
    "calendar removed": [BASE, changed(cal=None)],
    "named calendar appears": [BASE, {**BASE, "crons.d/calendars/nope.yaml":
                                      b"dates: [2026-01-01]\n"}],
    "invalid file, then fixed": [BASE, changed(a=b"schedule: [\n"), changed(a=b"oops: 1\n"),
                                 BASE],
    "duplicate name appears and goes": [BASE, changed(e=cron(extra="name: a\n")), BASE],
    "file renamed": [BASE, {**changed(a=None), "crons.d/z/a.yaml": BASE["crons.d/a.yaml"]}],
}


@pytest.mark.parametrize("sequence", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_a_cached_load_equals_an_uncached_one(sequence):
    cache = ParseCache()
    for step, files in enumerate(sequence):
        snapshot = Snapshot(commit=f"c{step}", files=files,
                            refused=(Diagnostic("crons.d/big.yaml", 1, 1, "", "too big"),))
        assert load_snapshot(snapshot, "crons.d", cache=cache) == load_snapshot(snapshot,
                                                                                "crons.d")


def test_one_changed_file_among_many_is_the_one_parsed():
    files = {f"crons.d/team{i % 7}/job{i}.yaml": cron(f"rate({i + 1} minutes)")
             for i in range(300)}
    cache = ParseCache()
    first = load_snapshot(Snapshot("c1", files), cache=cache)
    assert (cache.parses, cache.hits) == (300, 0)
    files["crons.d/team3/job3.yaml"] = cron("rate(9 hours)")
    second = load_snapshot(Snapshot("c2", files), cache=cache)
    assert (cache.parses, cache.hits) == (301, 299)
    assert second == load_snapshot(Snapshot("c2", files))
    assert second.specs != first.specs
    load_snapshot(Snapshot("c2", files), cache=cache)
    assert (cache.parses, cache.hits) == (301, 599)


def test_a_calendar_change_reparses_the_crons_that_name_it_only():
    files = dict(BASE)
    cache = ParseCache()
    load_snapshot(Snapshot("c1", files), cache=cache)
    assert (cache.parses, cache.calendar_parses) == (4, 1)
    files[CAL] = b"timezone: Europe/Berlin\ndates: [2026-12-25]\n"
    result = load_snapshot(Snapshot("c2", files), cache=cache)
    assert (cache.parses, cache.calendar_parses) == (5, 2)   # team/c.yaml only
    spec = next(s for s in result.specs if s.file == "crons.d/team/c.yaml")
    assert spec.exclude[0].timezone == "Europe/Berlin"
    files["crons.d/calendars/nope.yaml"] = b"dates: [2026-01-01]\n"   # d.yaml's missing one
    result = load_snapshot(Snapshot("c3", files), cache=cache)
    assert cache.parses == 6 and result.ok


def test_the_cache_keeps_only_the_files_of_the_latest_load():
    cache = ParseCache()
    load_snapshot(Snapshot("c1", BASE), cache=cache)
    assert len(cache) == 5
    load_snapshot(Snapshot("c2", changed(a=None, b=None, cal=None)), cache=cache)
    assert len(cache) == 2


def test_another_calendar_folder_is_not_served_from_the_cache():
    files = {"jobs/a.yaml": cron(extra="exclude: [h]\n"), "cal/h.yaml": b"dates: [2026-12-25]\n"}
    cache = ParseCache()
    with_folder = load_snapshot(Snapshot(None, files), "", calendar_dir="cal", cache=cache)
    assert with_folder.ok
    without = load_snapshot(Snapshot(None, files), "", cache=cache)
    assert without == load_snapshot(Snapshot(None, files), "") and not without.ok

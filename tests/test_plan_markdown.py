"""`cronctl reconcile --dry-run --output markdown`: the plan as a pull-request comment, from
real passes against the moto server (and a pure render for exact fire times)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from reconciler.cli import main
from reconciler.core.plan.markdown import MARKER, fire_times, render_markdown
from reconciler.service.control.reconcile import run_pass
from tests.support.reconcile_env import cron_yaml, prepare, write_crons

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)   # a Monday


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    return clients, settings.with_(repo=str(tmp_path)), tmp_path


def dry_run(env, crons, **kwargs) -> str:
    clients, settings, root = env
    write_crons(root, crons)
    result = run_pass(clients, settings.with_(**kwargs) if kwargs else settings, dry_run=True)
    return render_markdown(result.plan, result.apply_errors, result.errors, now=NOW)


def apply(env, crons) -> None:
    clients, settings, root = env
    write_crons(root, crons)
    assert run_pass(clients, settings, dry_run=False).ok


def test_a_new_cron_shows_its_fields_and_next_runs(env):
    text = dry_run(env, {"alpha": cron_yaml("cron(0 5 * * ? *)", "perl",
                                            env={"DB_PASSWORD": "hunter2"})})
    assert text.startswith(MARKER + "\n### cronctl plan")
    assert "**Plan: 3 to create, 0 to update, 0 to delete.**" in text
    assert "#### `alpha` — `crons.d/alpha.yaml`" in text
    assert "🟢 create **schedule**: new cron" in text
    assert "| expression | <i>none</i> | <code>cron(0 5 * * ? *)</code> |" in text
    assert "hunter2" not in text and "(sensitive)" in text
    assert "| 1 | — | 2026-03-03 05:00 UTC **≠** |" in text
    assert "| 5 | — | 2026-03-07 05:00 UTC **≠** |" in text
    assert "✅ **Mass-delete check: passed** (0 crons to delete)." in text


def test_a_schedule_change_shows_the_runs_before_and_after(env):
    apply(env, {"alpha": cron_yaml("cron(0 5 * * ? *)"), "beta": cron_yaml("rate(5 minutes)")})
    text = dry_run(env, {"alpha": cron_yaml("cron(30 7 ? * MON-FRI *)"),
                         "beta": cron_yaml("rate(5 minutes)")})
    assert "#### `beta`" not in text           # nothing changes for beta
    assert "🟡 update **schedule**: schedule changed" in text
    assert ("| expression | <code>cron(0 5 * * ? *)</code> | "
            "<code>cron(30 7 ? * MON-FRI *)</code> |") in text
    assert "| 1 | 2026-03-03 05:00 UTC | 2026-03-03 07:30 UTC **≠** |" in text
    assert len(re.findall(r"^\| \d \|", text, re.MULTILINE)) == 5


def test_deletes_the_mass_delete_check_and_errors_with_file_and_line(env):
    apply(env, {name: cron_yaml() for name in ("a", "b", "c", "d")})
    text = dry_run(env, {"a": 'schedule: "cron(0 5 * * * *)"\ncontainer:\n  image: x\n'},
                   max_deletes=1)
    assert "❌ **Mass-delete check: refused.** refusing to delete 3 crons" in text
    assert "#### Errors" in text
    assert "- ❌ crons.d/a.yaml is invalid: cron a is held back" in text
    assert re.search(r"<code>crons\.d/a\.yaml:1:\d+: schedule: [^<]+</code>", text)
    text = dry_run(env, {"a": cron_yaml(), "b": cron_yaml()})
    assert "✅ **Mass-delete check: passed** (2 crons to delete: `c`, `d`)." in text
    assert "🔴 delete **registry**: file removed" in text


def test_fire_times_of_rates_and_values_that_could_break_the_table():
    from reconciler.core.desired import DesiredSchedule

    rate = DesiredSchedule(backend="rules", name="n", arn="a", group=None,
                           expression="rate(5 minutes)", timezone="UTC", state="ENABLED",
                           description="", target_arn=None, input=None, input_paths=None)
    assert fire_times(rate, NOW) == "every 5 minutes, counted from when the schedule is created"
    berlin = replace(rate, expression="cron(30 7 ? * MON-FRI *)", timezone="Europe/Berlin")
    assert fire_times(berlin, NOW)[:2] == ["2026-03-03 06:30 UTC (07:30 Europe/Berlin)",
                                          "2026-03-04 06:30 UTC (07:30 Europe/Berlin)"]
    from reconciler.core.plan.markdown import _code

    assert _code("a|b\n<script>") == "<code>a&#124;b<br>&lt;script&gt;</code>"


def test_the_command_prints_markdown(env, capsys):
    clients, settings, root = env
    write_crons(root, {"alpha": cron_yaml()})
    code = main(["reconcile", "--repo", str(root), "--namespace", settings.namespace,
                 "--dry-run", "--output", "markdown"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(MARKER) and "#### `alpha`" in out

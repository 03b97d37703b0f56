"""Terminal and machine log lines: on a terminal, one readable coloured line per run and per
reconcile pass; anywhere else, JSON lines with every field (as before)."""

from __future__ import annotations

import io
import json
import re

import pytest
import structlog

from reconciler import logs

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _finished(log, status: str, exit_code, reason=None) -> None:
    log.info("execution.finished", cron="nightly", execution_id="0f1e2d3c-aaaa-bbbb",
             status=status, exit_code=exit_code, duration_s=72.4, reason=reason,
             source="consumer")


PASS = dict(commit="0123456789abcdef", dry_run=False, create=4, update=4, delete=4, applied=12,
            plan_errors=0, apply_errors=0, errors=[], duration_s=1.25, aws_calls=57,
            aws_calls_by_operation={"events.PutRule": 4, "dynamodb.TransactWriteItems": 8})


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(("status", "code", "colour"), [
    ("SUCCESS", 0, logs.GREEN), ("FAILED", 3, logs.RED), ("TIMEOUT", 143, logs.RED),
    ("LOST", None, logs.RED), ("SKIPPED", None, logs.YELLOW),
])
def test_a_finished_run_is_one_coloured_line_on_a_terminal(monkeypatch, status, code, colour):
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = FakeTty()
    logs.configure(stream=stream)
    _finished(logs.get_logger("t"), status, code)
    [line] = _lines(stream)
    assert f"{colour}" in line
    plain = ANSI.sub("", line)
    expected = f"nightly {status}" + (f" exit {code}" if code is not None else "") + \
        " after 1m 12s"
    assert expected in plain and "id=0f1e2d3c" in plain
    assert "execution_id" not in plain and "source" not in plain
    if colour == logs.RED:        # the whole sentence is red, not only the status
        assert f"{logs.RED}{expected}" in line


def test_a_failed_run_with_a_reason_says_why():
    stream = FakeTty()
    logs.configure(stream=stream, json=False)
    _finished(logs.get_logger("t"), "FAILED", 143, reason="replaced by 1234")
    assert "nightly FAILED exit 143 after 1m 12s: replaced by 1234" in ANSI.sub("", stream.getvalue())


def test_a_reconcile_pass_is_one_line_without_the_per_operation_dump():
    stream = FakeTty()
    logs.configure(stream=stream)
    logs.get_logger("t").info("reconcile.pass", **PASS)
    [line] = _lines(stream)
    plain = ANSI.sub("", line)
    assert "reconcile: 4 to create, 4 to update, 4 to delete; 12 applied" in plain
    assert "commit=0123456" in plain and "took=1.2s" in plain and "aws_calls=57" in plain
    assert "PutRule" not in plain and "aws_calls_by_operation" not in plain
    assert logs.RED not in line                                   # nothing wrong: no red


def test_a_reconcile_pass_spells_out_its_errors_in_red():
    stream = FakeTty()
    logs.configure(stream=stream)
    logs.get_logger("t").info("reconcile.pass", **{
        **PASS, "create": 0, "update": 0, "delete": 0, "applied": 0, "plan_errors": 2,
        "errors": ["ConfigError: unknown scheduler 'cron': use rules or scheduler"]})
    line = stream.getvalue()
    plain = ANSI.sub("", line)
    assert "reconcile: no changes; 2 crons not reconciled (`cronctl reconcile --dry-run` " \
           "shows why); unknown scheduler 'cron': use rules or scheduler" in plain
    assert "ConfigError" not in plain
    assert f"{logs.RED}2 crons not reconciled" in line


def test_no_color_keeps_the_readable_lines_without_ansi(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    stream = FakeTty()
    logs.configure(stream=stream)
    _finished(logs.get_logger("t"), "FAILED", 3)
    logs.get_logger("t").info("dispatch.started", cron="nightly", task_arn=(
        "arn:aws:ecs:us-east-1:123456789012:task/demo/abc"), resumed=None)
    text = stream.getvalue()
    assert not ANSI.search(text)
    assert "nightly FAILED exit 3 after 1m 12s" in text
    assert "task_arn=task/demo/abc" in text and "resumed" not in text


def test_not_a_terminal_stays_json_with_every_field():
    stream = io.StringIO()
    logs.configure(stream=stream)
    log = logs.get_logger("t")
    _finished(log, "FAILED", 3)
    log.info("reconcile.pass", **PASS)
    first, second = (json.loads(line) for line in _lines(stream))
    assert not ANSI.search(stream.getvalue())
    assert first["event"] == "execution.finished" and first["status"] == "FAILED"
    assert first["execution_id"] == "0f1e2d3c-aaaa-bbbb" and first["source"] == "consumer"
    assert second["event"] == "reconcile.pass"
    assert second["aws_calls_by_operation"] == PASS["aws_calls_by_operation"]
    assert {"level", "timestamp"} <= set(first)


def test_the_plumbing_of_a_run_is_dimmed_and_its_outcome_stands_out():
    stream = FakeTty()
    logs.configure(stream=stream)
    log = logs.get_logger("t")
    log.info("task started", runner="local-process", cron="nightly", image_not_used="busybox")
    log.info("http_request", method="POST", path="/sns", status=200)
    log.warning("http_request", method="POST", path="/sns", status=503)
    _finished(log, "FAILED", 3, reason="Essential container in task exited")
    started, delivered, refused, finished = _lines(stream)
    for line in (started, delivered):
        assert line.startswith(logs.DIM) and ANSI.findall(line) == [logs.DIM, logs.RESET]
    assert "image_not_used=busybox" in started
    assert len(ANSI.findall(refused)) > 2                      # coloured as usual
    assert ANSI.sub("", finished).split("] ", 1)[1].startswith("nightly FAILED exit 3 after 1m 12s id=")

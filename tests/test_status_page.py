"""The daemon's status page: the pure rendering (tables of inputs -> assertions on the HTML),
the answers of ``service.http.status_page`` (names checked before any lookup, 404, 405, 503,
headers), and the real daemon's pages loaded in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from reconciler.core.executions.records import Execution, execution_id
from reconciler.core.registry_model import RegistryItem
from reconciler.core.status import page
from reconciler.errors import NotFound
from reconciler.settings import Settings
from tests.support.specs import make_spec

NOW = datetime(2026, 11, 27, 10, 7, 30, tzinfo=UTC)
TASK = "arn:aws:ecs:us-east-1:123456789012:task/test/0123456789abcdef0123456789abcdef"
EID = "6f9e0c1a-2b3c-5d4e-8f90-123456789abc"
XSS = '<script>alert("x")</script>'


def run(status="SUCCESS", **fields) -> Execution:
    values = {"execution_id": EID, "cron": "hello", "scheduled_at": "2026-11-27T10:05:00Z",
              "status": status, "task_arn": TASK, "started_at": "2026-11-27T10:05:03.000Z",
              "stopped_at": "2026-11-27T10:05:07.000Z", "exit_code": 0}
    values.update(fields)
    return Execution(**values)


# -- a well-formedness check for every rendered page -------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link"}


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]} ")
        else:
            self.stack.pop()


def checked(text: str) -> str:
    """The page, after checking: a doctype, balanced tags, no script of any kind."""
    assert text.startswith("<!DOCTYPE html>")
    parser = _Balance()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    assert "script" not in parser.tags
    assert not re.search(r'<script|\son[a-z]+=|href="javascript:', text, re.IGNORECASE)
    return text


def overview(*rows: page.CronRow) -> str:
    return checked(page.overview_page(page.Overview("test", NOW, rows)))


def cron(row: page.CronRow | None = None, executions=(), **fields) -> str:
    row = row or page.CronRow("hello", "cron(*/5 * * * ? *)", last=run())
    return checked(page.cron_page(page.CronPage("test", NOW, row, list(executions), **fields)))


# -- the overview --------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "css", "colour"), [
    ("SUCCESS", "ok", "#1a7f37"),           # green
    ("FAILED", "bad", "#cf222e"),           # red
    ("TIMEOUT", "bad", "#cf222e"),
    ("FAILED_TO_START", "bad", "#cf222e"),
    ("LOST", "bad", "#cf222e"),
    ("RUNNING", "active", "#0969da"),       # blue
    ("PENDING", "active", "#0969da"),
    ("SKIPPED", "idle", "#57606a"),         # grey
    (None, "idle", "#57606a"),              # never run
])
def test_last_status_badge_has_its_colour(status, css, colour):
    last = run(status) if status else None
    text = overview(page.CronRow("hello", "cron(*/5 * * * ? *)", last=last))
    shown = status or "NEVER RUN"
    assert f'<span class="status {css}" data-status="{shown}">{shown}</span>' in text
    assert re.search(r"\.status\." + css + r" \{ color: " + colour, text)


WINTER = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
SUMMER = datetime(2026, 7, 1, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize(("row", "present", "absent"), [
    pytest.param(page.CronRow("hello", "cron(*/5 * * * ? *)",
                              next_run=datetime(2026, 11, 27, 10, 10, tzinfo=UTC)),
                 ["every 5 minutes", "<code class=\"sub\">cron(*/5 * * * ? *)</code>",
                  '<time datetime="2026-11-27T10:10:00Z">2026-Nov-27 10:10:00 UTC</time>',
                  "in 2m 30s", '<a href="/crons/hello">hello</a>'],
                 ['class="sub local"', "suspended"], id="utc cron"),
    pytest.param(page.CronRow("report", "cron(30 7 ? * MON-FRI *)", "Europe/Berlin",
                              next_run=WINTER),
                 ["(Europe/Berlin)", "2026-Nov-28 06:30:00 UTC",
                  '<span class="sub local">2026-Nov-28 07:30:00 CET</span>'],
                 [], id="zoned cron in winter"),
    pytest.param(page.CronRow("report", "cron(30 7 ? * MON-FRI *)", "Europe/Berlin",
                              next_run=SUMMER),
                 ['<span class="sub local">2026-Jul-01 07:30:00 CEST</span>'],
                 [], id="zoned cron in summer"),
    pytest.param(page.CronRow("beat", "rate(10 minutes)",
                              next_run=datetime(2026, 11, 27, 10, 17, tzinfo=UTC)),
                 ["every 10 minutes", "rate(10 minutes)", "in 9m 30s"], [], id="rate"),
    pytest.param(page.CronRow("odd", "cron(not a schedule)"),
                 ["<code class=\"sub\">cron(not a schedule)</code>"], [], id="unreadable"),
    pytest.param(page.CronRow("paused", "cron(0 3 * * ? *)", suspended=True),
                 ['paused</a> <span class="tag">suspended</span>', "- (suspended)"], [], id="suspended"),
    pytest.param(page.CronRow("hello", "cron(*/5 * * * ? *)", last=run("FAILED", exit_code=3)),
                 ["2026-Nov-27 10:05:03 UTC", "2m 27s ago", ">4s</td>", "1 failing"],
                 [], id="finished run"),
    pytest.param(page.CronRow("hello", "cron(*/5 * * * ? *)",
                              last=run("RUNNING", stopped_at=None, exit_code=None)),
                 [">2m 27s so far</td>", "1 running"], [], id="running run"),
])
def test_overview_row(row, present, absent):
    text = overview(row)
    for snippet in present:
        assert snippet in text
    for snippet in absent:
        assert snippet not in text


def test_alert_column_shows_only_when_a_cron_has_an_alert_and_is_escaped():
    quiet = page.CronRow("hello", "cron(*/5 * * * ? *)")
    assert "Alert" not in overview(quiet)
    text = overview(quiet, page.CronRow("loud", "cron(0 * * * ? *)", alert=f"down {XSS}"))
    assert "<th>Alert</th>" in text
    assert '<td class="alert-cell"></td>' in text          # the quiet cron's empty slot
    assert '<span class="alert">down &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in text


def test_overview_counts_and_empty_namespace():
    assert "No crons in this namespace yet." in overview()
    assert "0 crons" in overview()
    text = overview(page.CronRow("a", "rate(1 minute)", last=run("FAILED")),
                    page.CronRow("b", "rate(1 minute)", last=run("RUNNING", stopped_at=None)))
    assert "namespace <b>test</b> · 2 crons · 1 failing · 1 running · as of" in text
    assert text.index('data-cron="a"') < text.index('data-cron="b"')   # order kept


# -- a cron's page -------------------------------------------------------------------------

CONSOLE = ("https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
           "#logsV2:log-groups/log-group/$252Fcronctl$252Ftest/log-events/"
           "test$252Fmain$252F0123456789abcdef0123456789abcdef")


@pytest.mark.parametrize(("fields", "executions", "present", "absent"), [
    pytest.param({}, [run()],
                 [f'<tr class="run" data-execution="{EID}">', f"<code>{EID}</code>",
                  '<time datetime="2026-11-27T10:05:00Z">2026-Nov-27 10:05:00 UTC</time>',
                  '<td class="num">0</td>', f"Logs: <code>cronctl logs hello {EID}</code>",
                  "Recent executions (1)"],
                 ["CloudWatch Logs</a>", "Runbook"], id="a run, no console link"),
    pytest.param({"logs_flags": ("--namespace", "test")}, [run()],
                 [f"<code>cronctl logs hello {EID} --namespace test</code>"], [],
                 id="namespace flag"),
    pytest.param({"console_region": "us-east-1", "log_group": "/cronctl/test"}, [run()],
                 [f'<a href="{CONSOLE}" rel="noopener noreferrer">CloudWatch Logs</a>'], [],
                 id="console link"),
    pytest.param({"console_region": "us-east-1", "log_group": "/cronctl/test"},
                 [run("SKIPPED", task_arn=None, started_at=None, stopped_at=None,
                      exit_code=None, reason="overlap: the last run is still running")],
                 ["No logs: this run never started a task.",
                  "overlap: the last run is still running", '<td class="num">-</td>'],
                 ["cronctl logs", "CloudWatch"], id="run without a task"),
    pytest.param({}, [run("FAILED", exit_code=3, reason=f"Essential container {XSS}")],
                 ["Essential container &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"],
                 [], id="reason escaped"),
    pytest.param({}, [run(trigger="manual")], [f'<code>{EID}</code> <span class="tag">manual</span>'], [],
                 id="manual run"),
    pytest.param({"docs": "https://wiki.example.com/runbooks/hello?a=1&b=2"}, [],
                 ['<dt>Runbook</dt><dd><a href="https://wiki.example.com/runbooks/hello?a=1'
                  '&amp;b=2" rel="noopener noreferrer">', "No executions yet.",
                  "<h2>Recent executions</h2>"], [], id="runbook link"),
    pytest.param({"docs": "javascript:alert(1)"}, [], [], ["<dt>Runbook</dt><dd><a"],
                 id="only http(s) is a link"),
    pytest.param({"file": "crons.d/hello.yaml", "commit": "0123456789abcdef" * 2 + "01234567"},
                 [], ["<code>crons.d/hello.yaml</code> at commit <code>0123456789ab</code>"], [],
                 id="source"),
])
def test_cron_page(fields, executions, present, absent):
    text = cron(executions=executions, **fields)
    for snippet in present:
        assert snippet in text
    for snippet in absent:
        assert snippet not in text


def test_cron_page_facts_and_alert_slot():
    row = page.CronRow("report", "cron(30 7 ? * MON-FRI *)", "Europe/Berlin", suspended=True,
                       last=run("TIMEOUT", exit_code=137))
    text = cron(row, [row.last])
    assert '<dt>Last status</dt><dd><span class="status bad" data-status="TIMEOUT">' in text
    assert "at 07:30 Monday through Friday (Europe/Berlin)" in text
    assert "<dt>Time zone</dt><dd>Europe/Berlin</dd>" in text
    assert "<dt>Suspended</dt>" in text and "- (suspended)" in text
    assert 'role="alert"' not in text
    alerted = cron(page.CronRow("report", "rate(1 hour)", alert=f"no run for 2h {XSS}"))
    assert ('<p class="alert-box" role="alert">no run for 2h &lt;script&gt;alert(&quot;x'
            '&quot;)&lt;/script&gt;</p>') in alerted


@pytest.mark.parametrize(("region", "expected"), [
    ("eu-central-1", "https://eu-central-1.console.aws.amazon.com/cloudwatch/home?"
                     "region=eu-central-1#logsV2:log-groups/log-group/$252Fg/log-events/s"),
    ("cn-north-1", "https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1"
                   "#logsV2:log-groups/log-group/$252Fg/log-events/s"),
    ("us-gov-west-1", "https://console.amazonaws-us-gov.com/cloudwatch/home?"
                      "region=us-gov-west-1#logsV2:log-groups/log-group/$252Fg/log-events/s"),
    ("evil.example/x", None),
    ("", None),
])
def test_console_url(region, expected):
    assert page.console_url(region, "/g", "s") == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("nope", "There is no cron named <code>nope</code> in this namespace."),
    (XSS, "There is no cron named <code>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
    (None, "That is not the name of a cron."),
])
def test_not_found_page(name, expected):
    assert expected in checked(page.not_found_page("test", name, NOW))


def test_unavailable_page_escapes_the_detail():
    text = checked(page.unavailable_page("test", f"registry table {XSS} not found", NOW))
    assert "registry table &lt;script&gt;" in text


# -- the service's answers (fake reads) ----------------------------------------------------

class FakeRegistry:
    def __init__(self, items: dict[str, RegistryItem], error: Exception | None = None) -> None:
        self.items, self.error, self.calls = items, error, []

    def get(self, name):
        self.calls.append(("get", name))
        if self.error:
            raise self.error
        return self.items.get(name)

    def all(self):
        self.calls.append(("all",))
        if self.error:
            raise self.error
        return [self.items[n] for n in sorted(self.items)]


class FakeExecutions:
    def __init__(self, runs: dict[str, list[Execution]]) -> None:
        self.runs, self.calls = runs, []

    def recent(self, cron, limit=10):
        self.calls.append((cron, limit))
        return self.runs.get(cron, [])[:limit]


def _item(name: str, **spec) -> RegistryItem:
    return RegistryItem(name=name, spec=make_spec(name, **spec),
                        spec_hash="h", file=f"crons.d/{name}.yaml", schedule_backend="rules",
                        commit="a" * 40)


def _pages(registry, executions=None, **settings):
    from reconciler.service.http.status_page import StatusPages

    return StatusPages(None, Settings(namespace="test", **settings), now=lambda: NOW,
                       registry=registry, executions=executions or FakeExecutions({}))


@pytest.mark.parametrize("path", [
    "/crons/Hello", "/crons/-hello", "/crons/hello-", "/crons/" + "a" * 65, "/crons/",
    "/crons/hello/", "/crons/a/b", "/crons/%3Cscript%3E", "/crons/hello%0A", "/crons/héllo",
    "/crons/hello\n",
])
def test_a_path_that_names_no_valid_cron_is_404_without_any_lookup(path):
    registry = FakeRegistry({"hello": _item("hello")})
    answer = _pages(registry).answer("GET", path)
    assert (answer.status, answer.reason) == (404, "not_found")
    assert "That is not the name of a cron." in answer.text
    assert registry.calls == []


def test_answers_of_the_status_page_service():
    registry = FakeRegistry({"hello": _item("hello", docs="https://wiki.example.com/hello"),
                             "other": _item("other")})
    executions = FakeExecutions({"hello": [run("FAILED", exit_code=3)]})
    pages = _pages(registry, executions)

    assert pages.answer("GET", "/healthz") is None            # not one of its paths
    refused = pages.answer("POST", "/")
    assert (refused.status, refused.headers) == (405, {"Allow": "GET"})
    assert registry.calls == []

    root = pages.answer("GET", "/")
    assert (root.status, root.content_type) == (200, "text/html; charset=utf-8")
    assert root.headers["Cache-Control"] == "no-store"
    assert "script-src" not in root.headers["Content-Security-Policy"]
    assert root.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert executions.calls == [("hello", 1), ("other", 1)]
    assert 'data-cron="hello"' in root.text and 'data-cron="other"' in root.text

    one = pages.answer("GET", "/crons/hello")
    assert one.status == 200 and one.headers["Cache-Control"] == "no-store"
    assert f"cronctl logs hello {EID} --namespace test" in checked(one.text)
    assert 'href="https://wiki.example.com/hello"' in one.text
    assert "CloudWatch Logs</a>" in one.text          # AWS itself: console links
    assert executions.calls[-1] == ("hello", 20)

    missing = pages.answer("GET", "/crons/nope")
    assert missing.status == 404 and missing.headers["Cache-Control"] == "no-store"
    assert "There is no cron named <code>nope</code>" in missing.text
    assert registry.calls[-1] == ("get", "nope")


def test_local_endpoint_gets_no_console_links_and_default_namespace_no_flag():
    from reconciler.service.http.status_page import StatusPages

    pages = StatusPages(None, Settings(endpoint_url="http://127.0.0.1:5000"), now=lambda: NOW,
                        registry=FakeRegistry({"hello": _item("hello")}),
                        executions=FakeExecutions({"hello": [run()]}))
    text = pages.answer("GET", "/crons/hello").text
    assert f"<code>cronctl logs hello {EID}</code>" in text
    assert "CloudWatch Logs</a>" not in text


def test_unreadable_tables_answer_503_saying_why():
    registry = FakeRegistry({}, error=NotFound("registry table test-registry not found"))
    for path in ("/", "/crons/hello"):
        answer = _pages(registry).answer("GET", path)
        assert (answer.status, answer.reason) == (503, "unavailable")
        assert "registry table test-registry not found" in checked(answer.text)


# -- the real daemon, in headless Chromium -------------------------------------------------

CRONS = {
    "hello": """\
schedule: "cron(*/5 * * * ? *)"
container:
  image: busybox
  arguments: ["sh", "-c", "echo hello"]
timeout: 10m
""",
    "nightly-report": """\
schedule: "cron(30 7 ? * MON-FRI *)"
timezone: Europe/Berlin
container:
  image: python:3.12-slim
  arguments: ["python", "-c", "print('report sent')"]
timeout: 30m
meta:
  docs: https://wiki.example.com/runbooks/nightly-report
""",
    "heartbeat": """\
schedule: "rate(5 minutes)"
container:
  image: busybox
  arguments: ["sh", "-c", "echo beat"]
timeout: 10m
concurrency: allow
""",
    "paused": """\
schedule: "cron(0 3 * * ? *)"
container:
  image: busybox
timeout: 5m
suspend: true
""",
}
REASON = f"{XSS} Essential container in task exited"


class _Rows(HTMLParser):
    """The rows of a page's tables: (the row's attributes, the text of each cell)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[dict, list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append((dict(attrs), []))
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def rows(dom: str, attribute: str) -> dict[str, list[str]]:
    parser = _Rows()
    parser.feed(dom)
    return {attrs[attribute]: cells for attrs, cells in parser.rows if attribute in attrs}


@pytest.fixture
def chromium(tmp_path):
    """Runs headless Chromium (bounded by a timeout); every process it started is killed at
    teardown (its own process group)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (make test installs it)")
    started: list[subprocess.Popen] = []

    def kill(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.wait(timeout=10)

    def chrome(*args: str, timeout: float = 30) -> str:
        profile = tmp_path / f"chromium-profile-{len(started)}"
        process = subprocess.Popen(
            [executable, "--headless", "--disable-gpu", "--no-sandbox",
             f"--user-data-dir={profile}", "--no-proxy-server", "--no-first-run",
             "--disable-extensions", "--disable-dev-shm-usage", "--disable-breakpad",
             "--disable-crash-reporter", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        started.append(process)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill(process)
            process.communicate()
            raise AssertionError(f"chromium {' '.join(args)} took over {timeout}s") from None
        assert process.returncode == 0, err.decode(errors="replace")[-2000:]
        return out.decode()

    yield chrome
    for process in started:
        kill(process)


def load(chrome, url: str, screenshot) -> str:
    """The page's DOM as Chromium built it; its screenshot (1280x900) saved at the path."""
    dom = chrome("--dump-dom", "--hide-scrollbars", "--window-size=1280,900",
                 f"--screenshot={screenshot}", url)
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 900)
    return dom


@pytest.fixture(scope="module")
def fleet(moto_server, tmp_path_factory):
    """A running daemon with four crons and their runs: hello (two SUCCESS), nightly-report
    (FAILED, exit 3, a reason with markup), heartbeat (RUNNING), paused (suspended, none).

    Shared by the tests below, which only read it (one daemon and four runs, not one per
    test): no test of this module may reset the moto server (the ``aws`` and ``settings``
    fixtures do) while it lives."""
    from reconciler.adapters import sns
    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.executions import ExecutionStore
    from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
    from reconciler.service.bootstrap import bootstrap
    from reconciler.service.wiring import build_daemon
    from tests.support.ecs_events import lifecycle, send_event
    from tests.support.moto import REGION, reset_moto
    from tests.support.sns import TestSigner
    from tests.support.waiting import wait_for

    reset_moto(moto_server)
    tmp_path = tmp_path_factory.mktemp("fleet")
    (tmp_path / "crons.d").mkdir()
    for name, text in CRONS.items():
        (tmp_path / "crons.d" / f"{name}.yaml").write_text(text)
    certs = tmp_path / "certs"
    certs.mkdir()
    TestSigner().write_cert(certs)
    settings = Settings(endpoint_url=moto_server, region=REGION, namespace="test",
                        repo=str(tmp_path), listen="127.0.0.1:0", sqs_wait_s=1, cluster="test",
                        sns_certs_dir=str(certs), scheduler="scheduler")  # zones: Scheduler
    clients = AwsClients(settings)
    infra = bootstrap(clients, settings)
    built = build_daemon(settings, cert_fetch=moto_cert_fetcher)
    built.daemon.start()
    try:
        sns.subscribe_endpoint(clients, infra.topic_arn, f"{built.http.url}/sns")
        wait_for(lambda: built.loop.last_result is not None, timeout=20,
                 message="the first reconcile pass")
        result = built.loop.last_result
        assert not result.errors and not result.plan.errors, (result.errors, result.plan.errors)
        store, sqs = ExecutionStore(clients, settings), clients.client("sqs")
        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)

        def dispatch(cron: str, minutes: int, status: str, **events) -> str:
            scheduled = base + timedelta(minutes=minutes)
            at = scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
            sns.publish(clients, infra.topic_arn, json.dumps({"cron": cron, "scheduled_at": at}))
            eid = execution_id(cron, at)
            record = wait_for(lambda: (r := store.get(eid)) and r.task_arn and r, timeout=10,
                              message=f"{cron}'s run to start")
            envelopes = lifecycle(record.task_arn, eid, created_at=scheduled, **events)
            if status == "RUNNING":
                envelopes = envelopes[:2]
            for envelope in envelopes:
                if status == "FAILED" and envelope["detail"].get("stoppedReason"):
                    envelope["detail"]["stoppedReason"] = REASON
                send_event(sqs, settings, envelope)
            wait_for(lambda: store.get(eid).status == status, timeout=15,
                     message=f"{cron}'s run to be {status}")
            return eid

        runs = {"hello-1": dispatch("hello", 0, "SUCCESS", run_seconds=4),
                "hello-2": dispatch("hello", 5, "SUCCESS", run_seconds=65),
                "nightly-report": dispatch("nightly-report", 10, "FAILED", main_exit=3,
                                           run_seconds=12),
                "heartbeat": dispatch("heartbeat", 19, "RUNNING")}   # started lately
        yield built, runs
    finally:
        assert built.daemon.stop(budget_s=30)


def test_overview_in_chromium(fleet, chromium, tmp_path):
    built, _ = fleet
    dom = load(chromium, f"{built.http.url}/", tmp_path / "status-page.png")
    table = rows(dom, "data-cron")
    assert list(table) == ["heartbeat", "hello", "nightly-report", "paused"]
    name, schedule, next_run, status, _last, duration = table["hello"]
    assert (name, status, duration) == ("hello", "SUCCESS", "1m 5s")
    assert schedule == "every 5 minutes cron(*/5 * * * ? *)"
    assert next_run.endswith("UTC in " + next_run.split(" in ")[-1])
    report = table["nightly-report"]
    assert report[1].startswith("at 07:30 Monday through Friday (Europe/Berlin)")
    assert re.search(r"UTC \d{4}-\w{3}-\d\d 07:30:00 CES?T in ", report[2])   # Berlin clock
    assert (report[3], report[5]) == ("FAILED", "12s")
    assert table["heartbeat"][1].startswith("every 5 minutes rate(5 minutes)")
    assert table["heartbeat"][3] == "RUNNING" and table["heartbeat"][5].endswith("so far")
    assert table["paused"][0] == "paused suspended"
    assert (table["paused"][2], table["paused"][3]) == ("- (suspended)", "NEVER RUN")
    assert "4 crons · 1 failing · 1 running" in dom
    assert "<th>Alert</th>" not in dom                          # no alerting yet


def test_overview_shows_the_next_hours_timeline_in_chromium(fleet, chromium, tmp_path):
    """Below the crons: every fire of the next hour (``fleet_timeline``), suspended crons left
    out, each linking to its cron; the busiest minutes; server-rendered, no script."""
    built, _ = fleet
    dom = load(chromium, f"{built.http.url}/", tmp_path / "status-timeline.png")
    section = dom[dom.index('<section class="timeline">'):]
    fires = re.findall(r'<tr data-fire="([^"]+)"><td class="nowrap"><time datetime="([^"]+)"',
                       section)
    by_cron: dict[str, list[str]] = {}
    for cron, moment in fires:
        by_cron.setdefault(cron, []).append(moment)
    # */5 and rate(5 minutes) fire 12 times in any hour; the 07:30 Berlin report at most once;
    # paused is suspended: never
    assert len(by_cron["hello"]) == 12 and len(by_cron["heartbeat"]) == 12
    assert "paused" not in by_cron
    assert len(by_cron.get("nightly-report", [])) <= 1
    assert [m for _, m in fires] == sorted(m for _, m in fires)
    assert f"<h2>Next hour: {len(fires)} runs scheduled</h2>" in section
    assert '<a href="/crons/hello">hello</a>' in section
    assert "<script" not in dom


def test_cron_page_in_chromium(fleet, chromium, tmp_path):
    built, runs = fleet
    dom = load(chromium, f"{built.http.url}/crons/nightly-report", tmp_path / "cron-page.png")
    eid = runs["nightly-report"]
    cells = rows(dom, "data-execution")[eid]
    assert cells[0] == eid
    assert cells[3:6] == ["12s", "FAILED", "3"]
    assert cells[6] == REASON                        # shown as text, never run as a script
    assert "<script" not in dom
    assert f"cronctl logs nightly-report {eid} --namespace test" in dom
    assert 'href="https://wiki.example.com/runbooks/nightly-report"' in dom
    assert "CloudWatch Logs</a>" not in dom          # a local endpoint: no console links


def test_daemon_answers_404_405_and_no_store(fleet):
    built, runs = fleet

    def get(path: str, method: str = "GET"):
        request = urllib.request.Request(f"{built.http.url}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    status, headers, text = get("/")
    assert (status, headers["Cache-Control"]) == (200, "no-store")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    status, _, text = get("/crons/hello")
    assert status == 200
    assert list(rows(text, "data-execution")) == [runs["hello-2"], runs["hello-1"]]  # newest 1st
    for path in ("/crons/nope", "/crons/%3Cscript%3E", "/crons/Hello"):
        status, headers, text = get(path)
        assert (status, headers["Cache-Control"]) == (404, "no-store"), path
        assert "<!DOCTYPE html>" in text and "<script" not in text
    status, headers, _ = get("/", "POST")
    assert (status, headers["Allow"]) == (405, "GET")
    assert get("/healthz")[0] == 200 and get("/nowhere")[0] == 404     # the other routes

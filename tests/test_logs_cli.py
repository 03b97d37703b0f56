"""`cronctl logs`, the CloudWatch Logs adapter, the local runner's output, and the pure helpers."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.logs import ensure_log_group, put_lines, read_pages
from reconciler.core import log_streams
from reconciler.core.executions.records import Execution
from reconciler.core.registry_model import RegistryItem
from reconciler.service.embedded.runner import LocalTaskRunner
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from tests.support.ecs_events import lifecycle, put_cron, send_events
from tests.support.specs import make_spec
from tests.support.waiting import wait_for

NS = ["--namespace", "test"]
ROOT = Path(__file__).resolve().parent.parent
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/test/0123456789abcdef0123456789abcdef"


# -- helpers ----------------------------------------------------------------------------------

def start_run(clients, settings, cron: str, scheduled_at: str) -> tuple[str, str]:
    """Dispatch one scheduled run; (execution id, task ARN)."""
    outcome = Dispatcher(clients, settings).dispatch(cron, scheduled_at)
    assert outcome.status == "started", outcome
    return outcome.execution_id, outcome.task_arn


def finish_run(clients, settings, eid: str, task_arn: str, main_exit: int = 0) -> None:
    send_events(clients.client("sqs"), settings, lifecycle(task_arn, eid, main_exit=main_exit))
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    while consumer.process_batch():
        pass


def stream_of(settings, task_arn: str) -> str:
    return log_streams.stream_name(settings.namespace, task_arn)


@pytest.fixture
def cron(plane, settings):
    """A cron 'hello' with the namespace's log group; (clients, settings)."""
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="allow")
    ensure_log_group(clients, settings.log_group_name, 14, {"cronctl:namespace": "test"})
    return clients, settings


def logs(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["logs", *argv, *NS])
    out, err = capsys.readouterr()
    return code, out, err


# -- cronctl logs -------------------------------------------------------------------------------

def test_logs_of_the_latest_a_given_and_a_prefixed_execution(cron, capsys):
    clients, settings = cron
    first, first_task = start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    second, second_task = start_run(clients, settings, "hello", "2026-01-01T10:05:00Z")
    put_lines(clients, settings.log_group_name, stream_of(settings, first_task),
              ["first run", "", "done"])
    put_lines(clients, settings.log_group_name, stream_of(settings, second_task),
              ["second run"])

    assert logs(capsys, "hello") == (0, "second run\n", "")
    assert logs(capsys, "hello", first) == (0, "first run\ndone\n", "")
    assert logs(capsys, "hello", first[:15] + "...") == (0, "first run\ndone\n", "")
    assert logs(capsys, "hello", second[:8]) == (0, "second run\n", "")


def test_pagination_reads_every_page_in_order(cron, capsys):
    clients, settings = cron
    eid, task = start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    lines = [f"line {i}" for i in range(12_000)]
    assert put_lines(clients, settings.log_group_name, stream_of(settings, task), lines) == 12_000
    pages = [events for events, _ in read_pages(clients, settings.log_group_name,
                                                 stream_of(settings, task))]
    assert len([p for p in pages if p]) >= 2  # more than one page of events really exists
    code, out, err = logs(capsys, "hello", eid)
    assert (code, err) == (0, "")
    assert out.splitlines() == lines


def test_timestamps_prefix_each_line(cron, capsys):
    clients, settings = cron
    eid, task = start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    moment = datetime.now(UTC).replace(microsecond=250_000)
    put_lines(clients, settings.log_group_name, stream_of(settings, task), ["a", "b"],
              timestamp_ms=int(moment.timestamp() * 1000))
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + ".250Z"
    assert logs(capsys, "hello", "--timestamps") == (0, f"{stamp} a\n{stamp} b\n", "")


class _Recorder(io.StringIO):
    """A stdout that other threads can read safely."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)

    def text(self) -> str:
        with self._lock:
            return self.getvalue()


def _run_in_thread(name: str, target) -> tuple[threading.Thread, threading.Event, list]:
    stop, errors = threading.Event(), []

    def body() -> None:
        try:
            target(stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread, stop, errors


@pytest.mark.parametrize("stream_first", [True, False])
def test_follow_prints_new_lines_until_the_run_has_ended(cron, monkeypatch, stream_first):
    clients, settings = cron
    eid, task = start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    group, stream = settings.log_group_name, stream_of(settings, task)
    if stream_first:
        put_lines(clients, group, stream, ["first"])
    out = _Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    following = threading.Event()

    def the_task(stop: threading.Event) -> None:
        following.wait(10)
        if stream_first:
            wait_for(lambda: "first" in out.text() or stop.is_set(), message="first line")
        put_lines(clients, group, stream, ["second", "third"])
        wait_for(lambda: "third" in out.text() or stop.is_set(), message="follow to print")
        if not stop.is_set():
            put_lines(clients, group, stream, ["last words"])
            finish_run(clients, settings, eid, task, main_exit=0)

    thread, stop, errors = _run_in_thread("cronctl-test-task", the_task)
    try:
        following.set()
        code = cli.main(["logs", "hello", "--follow", "--poll-interval", "0.05",
                         "--max-wait", "30", *NS])
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and errors == []
    assert code == 0
    expected = (["first"] if stream_first else []) + ["second", "third", "last words"]
    assert out.text().splitlines() == expected


def test_ctrl_c_ends_follow_with_exit_code_130(cron):
    """A real ``cronctl logs --follow`` process, interrupted as a terminal's Ctrl-C does
    (SIGINT): exit code 130, nothing more printed. A process, not ``cli.main`` in a thread:
    a signal is handled by a process's main thread only."""
    clients, settings = cron
    _, task = start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    put_lines(clients, settings.log_group_name, stream_of(settings, task), ["running"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "logs", "hello", "--follow", "--poll-interval",
         "0.05", "--max-wait", "30", *NS], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a suite started in the background (``cmd &``) inherits SIGINT
        # ignored, and Python installs no Ctrl-C handler where it starts ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()    # flushed per line; EOF after --max-wait at most
        assert first == "running\n", (first, proc.poll())
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        rest, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert code == 130, err
    assert rest == "" and "stopped following" not in err, (rest, err)


def test_follow_gives_up_after_max_wait(cron, capsys):
    clients, settings = cron
    start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    code, out, err = logs(capsys, "hello", "--follow", "--max-wait", "0.2",
                          "--poll-interval", "0.05")
    assert code == 0
    assert "stopped following after 0.2s" in err
    assert out.startswith("no logs yet for ")


def test_unknown_cron_is_an_error(cron, capsys):
    code, out, err = logs(capsys, "nobody")
    assert (code, out) == (1, "")
    assert "no cron named 'nobody' in namespace 'test'" in err


def test_cron_without_runs_and_unknown_or_ambiguous_ids(cron, capsys):
    clients, settings = cron
    code, _, err = logs(capsys, "hello")
    assert code == 1 and "cron 'hello' has no executions yet" in err
    store = ExecutionStore(clients, settings)
    for eid in ("aaaa1111-0000-4000-8000-000000000000", "aaaa2222-0000-4000-8000-000000000000"):
        assert store.create(Execution(execution_id=eid, cron="hello", task_arn=TASK_ARN,
                                      scheduled_at="2026-01-01T10:00:00.000Z",
                                      trigger="manual"))
    code, _, err = logs(capsys, "hello", "zzzz")
    assert code == 1 and "no execution of 'hello' with id 'zzzz'" in err
    code, _, err = logs(capsys, "hello", "aaaa")
    assert code == 1 and "is ambiguous" in err
    assert "aaaa1111-" in err and "aaaa2222-" in err


def test_a_skipped_execution_has_no_logs(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="forbid")
    start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    skipped = Dispatcher(clients, settings).dispatch("hello", "2026-01-01T10:05:00Z")
    assert skipped.status == "skipped"
    code, out, err = logs(capsys, "hello", skipped.execution_id)
    assert (code, out) == (1, "")
    assert f"execution {skipped.execution_id} never started a task (status SKIPPED" in err


def test_no_stream_yet(cron, capsys):
    clients, settings = cron
    eid, task = start_run(clients, settings, "hello", "2026-01-01T10:00:00Z")
    code, out, err = logs(capsys, "hello")
    assert (code, err) == (0, "")
    assert out == (f"no logs yet for {eid} (stream test/main/{task.rsplit('/', 1)[1]} "
                   f"in /cronctl/test)\n")


# -- the local runner's output --------------------------------------------------------------------

def test_runner_ships_stdout_and_stderr_to_the_awslogs_stream(plane, settings):
    clients, _ = plane
    ensure_log_group(clients, settings.log_group_name, 14, {})
    command = ["sh", "-c", "echo hello; echo err >&2; exit 3"]
    item = RegistryItem(
        name="hello", spec=make_spec("hello", timeout_s=60), spec_hash="x",
        commit="0" * 40, file="crons.d/hello.yaml", schedule_backend="rules",
        task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/t:1",
        overrides={"containerOverrides": [{"name": "main", "command": command}]},
        updated_at="2026-01-01T00:00:00Z")
    sent: list[dict] = []
    runner = LocalTaskRunner(
        list_started=lambda: [{"execution_id": "e-1", "cron": "hello", "task_arn": TASK_ARN}],
        registry_get=lambda name: item, send_event=sent.append, region="us-east-1",
        account="123456789012", cluster_arn="arn:aws:ecs:us-east-1:123456789012:cluster/test",
        use_docker=False, log_group=settings.log_group_name, stream_prefix=settings.namespace,
        put_logs=lambda group, stream, lines: put_lines(clients, group, stream, lines))

    def stopped() -> bool:
        runner.poll()
        return any(e["detail"]["lastStatus"] == "STOPPED" for e in sent)

    wait_for(stopped, message="the process to end")
    main = next(c for c in sent[-1]["detail"]["containers"] if c["name"] == "main")
    assert main["exitCode"] == 3
    stream = f"test/main/{TASK_ARN.rsplit('/', 1)[1]}"
    messages = [e["message"] for events, _ in read_pages(clients, settings.log_group_name,
                                                          stream) for e in events]
    assert sorted(messages) == ["err", "hello"]


def test_runner_ships_lines_while_the_process_runs(plane, settings, tmp_path):
    clients, _ = plane
    ensure_log_group(clients, settings.log_group_name, 14, {})
    gate = tmp_path / "go"
    command = ["sh", "-c", f"echo early; while [ ! -e {gate} ]; do sleep 0.05; done; "
                           "printf 'late\\nno newline'"]
    item = RegistryItem(
        name="hello", spec=make_spec("hello", timeout_s=60), spec_hash="x",
        commit="0" * 40, file="crons.d/hello.yaml", schedule_backend="rules",
        task_definition_arn=None,
        overrides={"containerOverrides": [{"name": "main", "command": command}]},
        updated_at="2026-01-01T00:00:00Z")
    sent: list[dict] = []
    runner = LocalTaskRunner(
        list_started=lambda: [{"execution_id": "e-2", "cron": "hello", "task_arn": TASK_ARN}],
        registry_get=lambda name: item, send_event=sent.append, region="us-east-1",
        account="123456789012", cluster_arn="arn:aws:ecs:us-east-1:123456789012:cluster/test",
        use_docker=False, log_group=settings.log_group_name, stream_prefix=settings.namespace,
        put_logs=lambda group, stream, lines: put_lines(clients, group, stream, lines),
        logs_every_s=0)
    stream = log_streams.stream_name(settings.namespace, TASK_ARN)

    def messages() -> list[str]:
        try:
            return [e["message"] for events, _ in read_pages(
                clients, settings.log_group_name, stream) for e in events]
        except Exception:  # noqa: BLE001 - the stream does not exist yet
            return []

    try:
        wait_for(lambda: (runner.poll(), messages() == ["early"])[1], message="early line")
    finally:
        gate.touch()
    wait_for(lambda: (runner.poll(), len(sent) == 2)[1], message="the process to end")
    assert messages() == ["early", "late", "no newline"]


# -- pure helpers ---------------------------------------------------------------------------------

def test_stream_name_is_what_awslogs_writes():
    assert log_streams.stream_name("crons", TASK_ARN) == (
        "crons/main/0123456789abcdef0123456789abcdef")
    assert log_streams.stream_name("ns", "arn:aws:ecs:us-east-1:1:task/abc", "timeout") == (
        "ns/timeout/abc")
    with pytest.raises(ValueError, match="not an ECS task ARN"):
        log_streams.task_id("arn:aws:ecs:us-east-1:1:task/")


def _ex(eid: str, task: bool = True, status: str = "PENDING") -> Execution:
    return Execution(execution_id=eid, cron="c", scheduled_at="2026-01-01T00:00:00Z",
                     status=status, task_arn=TASK_ARN if task else None)


@pytest.mark.parametrize("executions, wanted, chosen, error", [
    ([_ex("b1", task=False, status="SKIPPED"), _ex("a1")], None, "a1", None),
    ([], None, None, "cron 'c' has no executions yet"),
    ([_ex("a1", task=False)], None, None, "no execution of 'c' has started a task yet"),
    ([_ex("abc"), _ex("abd")], "abd", "abd", None),
    ([_ex("abc"), _ex("xyz")], "ab...", "abc", None),
    ([_ex("ab"), _ex("abc")], "ab", "ab", None),
    ([_ex("abc"), _ex("abd")], "ab", None, "execution id prefix 'ab' of 'c' is ambiguous"),
    ([_ex("abc")], "zz", None, "no execution of 'c' with id 'zz'"),
    ([_ex("abc")], "...", None, "EXECUTION_ID must not be empty"),
])
def test_pick_execution(executions, wanted, chosen, error):
    choice = log_streams.pick_execution("c", executions, wanted)
    assert (choice.execution.execution_id if choice.execution else None) == chosen
    assert (choice.error or "").startswith(error or "")
    assert (choice.error is None) == (error is None)


def test_format_event():
    event = {"timestamp": 1_700_000_000_123, "message": "hi\n"}
    assert log_streams.format_event(event, False) == "hi"
    assert log_streams.format_event(event, True) == "2023-11-14T22:13:20.123Z hi"


def test_batches_respect_put_log_events_limits():
    small = [{"timestamp": 1, "message": "x"} for _ in range(10_001)]
    assert [len(b) for b in log_streams.batches(small)] == [10_000, 1]
    big = [{"timestamp": 1, "message": "y" * 200_000} for _ in range(6)]
    assert [len(b) for b in log_streams.batches(big)] == [5, 1]
    day = 24 * 3600 * 1000
    spread = [{"timestamp": t, "message": "z"} for t in (0, day, day + 1)]
    assert [len(b) for b in log_streams.batches(spread)] == [2, 1]
    assert log_streams.batches([]) == []


def test_long_lines_are_split_on_character_boundaries():
    line = "é" * 200_000  # 400,000 bytes
    pieces = log_streams.split_message(line)
    assert "".join(pieces) == line
    assert all(len(p.encode()) <= log_streams.MAX_EVENT_BYTES for p in pieces)
    assert log_streams.to_events(["", "a\r\n", line], 5)[0] == {"timestamp": 5, "message": "a"}


@pytest.mark.parametrize("buffer, final, lines, used", [
    (b"a\nb\npart", False, ["a", "b"], 4),
    (b"a\nb\npart", True, ["a", "b", "part"], 8),
    (b"part", False, [], 0),
    (b"", True, [], 0),
    (b"bad \xff\n", False, ["bad \ufffd"], 6),
])
def test_complete_lines(buffer, final, lines, used):
    assert log_streams.complete_lines(buffer, final) == (lines, used)

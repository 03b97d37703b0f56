"""The embedded task runner on its own (no emulator): the events it emits when a run ends by
itself, by its timeout and by StopTask, and that no process it started is left behind."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from reconciler.core.executions.records import Execution, apply_event, parse_task_event
from reconciler.core.registry_model import RegistryItem
from reconciler.service.embedded.runner import LocalTaskRunner, exit_code
from tests.support.specs import make_spec
from tests.support.waiting import wait_for

TASK = "arn:aws:ecs:us-east-1:123456789012:task/demo/0123456789abcdef"


def _item(arguments: list[str], timeout_s: int = 60) -> RegistryItem:
    spec = make_spec("job", container={"image": "busybox", "arguments": arguments},
                     timeout_s=timeout_s)
    return RegistryItem(name="job", spec=spec, spec_hash="h", file="crons.d/job.yaml",
                        schedule_backend="rules", task_definition_arn="arn:td/job:1",
                        overrides={"containerOverrides": [{"name": "main",
                                                           "command": arguments}]})


class _Harness:
    """A runner with one started execution; collects its events, answers DescribeTasks."""

    def __init__(self, item: RegistryItem, stop_grace_s: float = 5.0) -> None:
        self.events: list[dict] = []
        self.stop_requests: dict[str, str] = {}
        self.lock = threading.Lock()
        self.runner = LocalTaskRunner(
            list_started=lambda: [{"execution_id": "e1", "cron": "job", "task_arn": TASK}],
            registry_get=lambda name: item, send_event=self._send, region="us-east-1",
            account="123456789012", cluster_arn="arn:cluster/demo", poll_s=0.05,
            use_docker=False, describe_stopping=self._describe, stop_grace_s=stop_grace_s)

    def _send(self, envelope: dict) -> None:
        with self.lock:
            self.events.append(envelope)

    def _describe(self, arns: list[str]) -> dict[str, str]:
        return {arn: reason for arn, reason in self.stop_requests.items() if arn in arns}

    def stopped_event(self) -> dict | None:
        with self.lock:
            return next((e for e in self.events if e["detail"]["lastStatus"] == "STOPPED"), None)

    def record(self) -> Execution:
        """The execution after every event, as the consumer would store it."""
        record = Execution(execution_id="e1", cron="job", scheduled_at="2026-01-01T00:00:00Z",
                           task_arn=TASK)
        for envelope in self.events:
            record = apply_event(record, parse_task_event(envelope)) or record
        return record


@pytest.fixture
def harness(request):
    made: list[_Harness] = []

    def make(*args, **kwargs) -> _Harness:
        made.append(_Harness(*args, **kwargs))
        made[-1].runner.start()
        return made[-1]

    yield make
    for h in made:
        assert h.runner.stop(timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_exit_codes_of_signals_are_dockers():
    assert (exit_code(0), exit_code(3), exit_code(-signal.SIGTERM), exit_code(-signal.SIGKILL)) \
        == (0, 3, 143, 137)


def test_a_run_that_ends_by_itself(harness):
    h = harness(_item(["sh", "-c", "exit 3"]))
    event = wait_for(h.stopped_event, timeout=10, message="the STOPPED event")
    assert event["detail"]["stopCode"] == "EssentialContainerExited"
    assert h.record().status == "FAILED" and h.record().exit_code == 3


def test_the_timeout_stops_the_task_as_the_sidecar_would(harness, tmp_path):
    pid_file = tmp_path / "child.pid"
    h = harness(_item(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout_s=1))
    event = wait_for(h.stopped_event, timeout=10, message="the STOPPED event")
    main, sidecar = event["detail"]["containers"]
    assert (main["name"], sidecar["name"], sidecar["exitCode"]) == ("main", "timeout", 124)
    assert main["exitCode"] == 143                       # SIGTERM, as ECS stops a task
    record = h.record()
    assert record.status == "TIMEOUT" and record.exit_code == 143
    child = int(pid_file.read_text())
    wait_for(lambda: not _alive(child), timeout=5, message="the task's child process to end")


def test_stop_task_ends_the_run_with_user_initiated_and_its_reason(harness):
    h = harness(_item(["sh", "-c", "echo started; sleep 60"]))
    wait_for(lambda: h.events, timeout=10, message="the RUNNING event")
    assert h.events[0]["detail"]["lastStatus"] == "RUNNING"
    h.stop_requests[TASK] = "replaced by e2"
    event = wait_for(h.stopped_event, timeout=10, message="the STOPPED event")
    detail = event["detail"]
    assert (detail["stopCode"], detail["stoppedReason"]) == ("UserInitiated", "replaced by e2")
    record = h.record()
    assert (record.status, record.exit_code, record.reason) == ("FAILED", 143, "replaced by e2")


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(harness):
    h = harness(_item(["sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"]),
                stop_grace_s=0.5)
    wait_for(lambda: h.events, timeout=10, message="the RUNNING event")
    h.stop_requests[TASK] = "stopped by a user"
    event = wait_for(h.stopped_event, timeout=10, message="the STOPPED event")
    assert event["detail"]["containers"][0]["exitCode"] == 137


def test_the_local_runner_says_it_ignores_the_image():
    runner = LocalTaskRunner(list_started=list, registry_get=lambda name: None,
                             send_event=lambda e: None, region="r", account="a",
                             cluster_arn="c", use_docker=False)
    assert "local process" in runner.describe() and "without its image" in runner.describe()

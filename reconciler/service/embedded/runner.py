"""A local task runner: runs each started task's ``main`` container and reports its states.

moto's RunTask starts nothing and no ECS events are ever emitted. For every execution that
dispatch started (status PENDING with a task ARN), this runner:

- runs the ``main`` container with Docker when a Docker engine answers, else runs its command
  as a local process (labelled ``runner=local-process`` in the logs: the image is NOT used);
- enforces the timeout as the ``timeout`` sidecar would (exit code 124 from that container);
- sends ``RUNNING`` then ``STOPPED`` ECS Task State Change events, in AWS's exact envelope,
  to the namespace's SQS queue, where the event consumer picks them up as it would on AWS;
- captures the process's stdout and stderr (one unnamed temp file per task, read with
  ``pread`` so the process's write offset is untouched) and ships the complete lines with
  ``put_logs(group, stream, lines)`` every ``logs_every_s`` and at the end, to the stream
  the ``awslogs`` driver would write (``core.log_streams.stream_name``).

One thread supervises every process (``poll``), so no thread per task is ever left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from reconciler.core.log_streams import complete_lines, stream_name
from reconciler.core.registry_model import RegistryItem
from reconciler.logs import get_logger
from reconciler.service.embedded.ecs_events import task_state_change

log = get_logger("cronctl.embedded.runner")


@dataclass
class _Running:
    execution_id: str
    cron: str
    task_arn: str
    task_definition_arn: str
    process: subprocess.Popen | None
    created_at: datetime
    started_at: datetime
    deadline: float
    version: int = 2
    output: IO[bytes] | None = None
    shipped: int = 0  # bytes of ``output`` already sent to the log stream
    shipped_at: float = 0.0


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _main_override(overrides: dict) -> dict:
    for entry in overrides.get("containerOverrides", []):
        if entry.get("name") == "main":
            return entry
    return {}


class LocalTaskRunner:
    def __init__(self, *, list_started: Callable[[], list[dict]],
                 registry_get: Callable[[str], RegistryItem | None],
                 send_event: Callable[[dict], None], region: str, account: str,
                 cluster_arn: str, poll_s: float = 0.5, use_docker: bool | None = None,
                 put_logs: Callable[[str, str, list[str]], object] | None = None,
                 log_group: str | None = None, stream_prefix: str | None = None,
                 logs_every_s: float = 5.0) -> None:
        """``put_logs(group, stream, lines)`` receives each task's output lines (in order);
        without it (or without ``log_group``/``stream_prefix``) the output is discarded."""
        self._list_started = list_started
        self._registry_get = registry_get
        self._send_event = send_event
        self._region, self._account, self._cluster_arn = region, account, cluster_arn
        self._poll_s = poll_s
        self._use_docker = docker_available() if use_docker is None else use_docker
        self._put_logs = put_logs if log_group and stream_prefix else None
        self._log_group, self._stream_prefix = log_group, stream_prefix
        self._logs_every_s = logs_every_s
        self._seen: set[str] = set()
        self._running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        log.info("local task runner started",
                 runner="docker" if self._use_docker else "local-process")
        self._thread = threading.Thread(target=self._run, name="cronctl-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        stopped = not (self._thread and self._thread.is_alive())
        for run in list(self._running.values()):
            if run.process and run.process.poll() is None:
                run.process.kill()
                run.process.wait(timeout=5)
            if stopped:  # else the poll thread may still be shipping this output
                self._ship_output(run, final=True)
        return stopped

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the runner must keep going
                log.exception("runner poll failed")
            self._stop.wait(self._poll_s)

    def poll(self) -> None:
        for execution in self._list_started():
            eid = execution["execution_id"]
            if eid not in self._seen and execution.get("task_arn"):
                self._seen.add(eid)
                self._launch(execution)
        for run in list(self._running.values()):
            code = run.process.poll() if run.process else 1
            if code is None and time.monotonic() - run.shipped_at >= self._logs_every_s:
                self._ship_output(run, final=False)
            if code is not None:
                self._finish(run, main_exit=code)
            elif time.monotonic() > run.deadline:
                run.process.kill()
                run.process.wait(timeout=5)
                self._finish(run, main_exit=137, timeout_exit=124)

    def _command(self, item: RegistryItem) -> tuple[list[str] | None, dict[str, str]]:
        main = _main_override(item.overrides)
        env = {e["name"]: e["value"] for e in main.get("environment", [])}
        command = main.get("command") or item.spec.get("container", {}).get("arguments")
        image = item.spec.get("container", {}).get("image", "")
        if self._use_docker:
            flags = [f"--env={k}={v}" for k, v in env.items()]
            return ["docker", "run", "--rm", *flags, image, *(command or [])], {}
        return command, env

    def _launch(self, execution: dict) -> None:
        item = self._registry_get(execution["cron"])
        now = datetime.now(UTC)
        if item is None:
            return
        command, env = self._command(item)
        task_def = item.task_definition_arn or ""
        base = dict(region=self._region, account=self._account, cluster_arn=self._cluster_arn,
                    task_arn=execution["task_arn"], task_definition_arn=task_def,
                    started_by=execution["execution_id"], created_at=now)
        if not command:
            self._send_event(task_state_change(
                **base, version=2, last_status="STOPPED", desired_status="STOPPED",
                stopped_at=now, stop_code="TaskFailedToStart",
                stopped_reason="the image's default command needs a Docker engine to run"))
            return
        output = tempfile.TemporaryFile(prefix="cronctl-task-") if self._put_logs else None
        sink = output if output is not None else subprocess.DEVNULL
        try:
            process = subprocess.Popen(command, env={**os.environ, **env},
                                       stdin=subprocess.DEVNULL, stdout=sink,
                                       stderr=subprocess.STDOUT)
        except OSError as exc:
            if output is not None:
                output.close()
            self._send_event(task_state_change(
                **base, version=2, last_status="STOPPED", desired_status="STOPPED",
                stopped_at=now, stop_code="TaskFailedToStart",
                stopped_reason=f"CannotStartContainerError: {exc}"))
            return
        timeout = int(item.spec.get("timeout_s", 86400))  # what the sidecar sleeps
        run = _Running(execution["execution_id"], execution["cron"], execution["task_arn"],
                       task_def, process, now, now, time.monotonic() + timeout,
                       output=output, shipped_at=time.monotonic())
        self._running[run.execution_id] = run
        log.info("task started", runner="docker" if self._use_docker else "local-process",
                 cron=run.cron, execution_id=run.execution_id)
        self._send_event(task_state_change(**base, version=2, last_status="RUNNING",
                                           desired_status="RUNNING", started_at=now))

    def _ship_output(self, run: _Running, final: bool) -> None:
        """Send the output's new complete lines (all of it when ``final``) to the log stream.

        On a failed send the lines are kept for the next try, except at the end (logged)."""
        if run.output is None or self._put_logs is None:
            return
        run.shipped_at = time.monotonic()
        try:
            size = os.fstat(run.output.fileno()).st_size
            pending = os.pread(run.output.fileno(), size - run.shipped, run.shipped)
            lines, used = complete_lines(pending, final)
            if lines:
                self._put_logs(self._log_group,
                               stream_name(self._stream_prefix, run.task_arn), lines)
            run.shipped += used
        except Exception:  # noqa: BLE001 - output shipping must not stop the runner
            log.exception("shipping task output failed", cron=run.cron,
                          execution_id=run.execution_id, final=final)
        if final:
            run.output.close()
            run.output = None

    def _finish(self, run: _Running, main_exit: int, timeout_exit: int | None = None) -> None:
        self._running.pop(run.execution_id, None)
        self._ship_output(run, final=True)
        now = datetime.now(UTC)
        self._send_event(task_state_change(
            region=self._region, account=self._account, cluster_arn=self._cluster_arn,
            task_arn=run.task_arn, task_definition_arn=run.task_definition_arn,
            started_by=run.execution_id, version=3, last_status="STOPPED",
            desired_status="STOPPED", created_at=run.created_at, started_at=run.started_at,
            stopped_at=now, main_exit=main_exit, timeout_exit=timeout_exit,
            stop_code="EssentialContainerExited",
            stopped_reason="Essential container in task exited"))
        log.info("task stopped", cron=run.cron, execution_id=run.execution_id,
                 exit_code=main_exit, timed_out=timeout_exit == 124)

"""A local task runner: runs each started task's ``main`` container and reports its states.

moto's RunTask starts nothing and no ECS events are ever emitted. For every execution that
dispatch started (status PENDING with a task ARN), this runner:

- runs the ``main`` container with Docker when a Docker engine answers, else runs its command
  as a local process (said once at start and on every ``task started`` line: the image is
  NOT used);
- enforces the timeout as the ``timeout`` sidecar would: past it, the task is stopped as ECS
  stops it when that essential container exits (SIGTERM, SIGKILL after ``stop_grace_s``) and
  the event carries exit code 124 for ``timeout``;
- honours StopTask (``replace`` stops the run it replaces): a task whose desired status on the
  emulator is STOPPED (``describe_stopping``) is stopped the same way, and its STOPPED event
  has stopCode ``UserInitiated`` and the reason given to StopTask, as ECS sends;
- reports a process ended by a signal as Docker does: exit code 128 + the signal (143, 137);
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
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from reconciler.core.executions.records import attempt_token
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
    container: str | None = None  # the Docker container's name (Docker runs only)
    stopping: str | None = None  # "timeout" or "user" once the task is being stopped
    started_by: str | None = None  # the attempt's token (``retries``); None: execution_id
    stop_reason: str | None = None
    kill_at: float = 0.0  # SIGKILL after this (monotonic), when SIGTERM was not enough


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


def exit_code(returncode: int) -> int:
    """A process's exit status as Docker (and so ECS) reports it: 128 + N when signal N ended
    it (SIGTERM 143, SIGKILL 137)."""
    return 128 - returncode if returncode < 0 else returncode


LOCAL_PROCESS_NOTE = ("no Docker engine answered: each task's command runs as a local process "
                      "on this machine, without its image")


def run_note(image: str) -> str:
    """What ``cronctl status`` says of a run the runner made without Docker."""
    return (f"ran as a local process on the embedded daemon's machine: the image {image} was "
            "not used (no Docker engine answered)")


class LocalTaskRunner:
    def __init__(self, *, list_started: Callable[[], list[dict]],
                 registry_get: Callable[[str], RegistryItem | None],
                 send_event: Callable[[dict], None], region: str, account: str,
                 cluster_arn: str, poll_s: float = 0.5, use_docker: bool | None = None,
                 put_logs: Callable[[str, str, list[str]], object] | None = None,
                 log_group: str | None = None, stream_prefix: str | None = None,
                 logs_every_s: float = 5.0,
                 describe_stopping: Callable[[list[str]], dict[str, str]] | None = None,
                 stop_grace_s: float = 30.0,
                 note_execution: Callable[[str, str], None] | None = None) -> None:
        """``put_logs(group, stream, lines)`` receives each task's output lines (in order);
        without it (or without ``log_group``/``stream_prefix``) the output is discarded.
        ``describe_stopping(task_arns)`` answers which of them StopTask asked to stop
        (ARN -> the reason given); ``stop_grace_s`` is ECS's stop timeout (SIGTERM, then
        SIGKILL). ``note_execution(execution_id, note)`` records on the execution that its
        command ran as a local process, without its image (``run_note``)."""
        self._list_started = list_started
        self._note_execution = note_execution
        self._registry_get = registry_get
        self._send_event = send_event
        self._region, self._account, self._cluster_arn = region, account, cluster_arn
        self._poll_s = poll_s
        self._use_docker = docker_available() if use_docker is None else use_docker
        self._put_logs = put_logs if log_group and stream_prefix else None
        self._log_group, self._stream_prefix = log_group, stream_prefix
        self._logs_every_s = logs_every_s
        self._describe_stopping = describe_stopping
        self._stop_grace_s = stop_grace_s
        self._seen: set[str] = set()
        self._running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def mode(self) -> str:
        return "docker" if self._use_docker else "local-process"

    def describe(self) -> str:
        """One line for the start-up summary: how tasks run here."""
        if self._use_docker:
            return "task runner: Docker (each task's main container runs with its image)"
        return f"task runner: local processes ({LOCAL_PROCESS_NOTE})"

    def start(self) -> None:
        if self._use_docker:
            log.info("local task runner started", runner=self.mode)
        else:
            log.warning("local task runner started", runner=self.mode,
                        message=LOCAL_PROCESS_NOTE)
        self._thread = threading.Thread(target=self._run, name="cronctl-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        stopped = not (self._thread and self._thread.is_alive())
        for run in list(self._running.values()):
            if run.process and run.process.poll() is None:
                self._signal(run, signal.SIGKILL)
                try:
                    run.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log.warning("task process did not end", cron=run.cron,
                                execution_id=run.execution_id)
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
            # By task: each attempt of a retried run (``retries``) is a task of its own.
            arn = execution.get("task_arn")
            if arn and arn not in self._seen:
                self._seen.add(arn)
                self._launch(execution)
        self._notice_stop_requests()
        for run in list(self._running.values()):
            code = run.process.poll() if run.process else 1
            if code is None and time.monotonic() - run.shipped_at >= self._logs_every_s:
                self._ship_output(run, final=False)
            if code is not None:
                self._finish(run, main_exit=exit_code(code))
            elif run.stopping is None and time.monotonic() > run.deadline:
                self._begin_stop(run, "timeout", None)
            elif run.stopping is not None and time.monotonic() >= run.kill_at:
                self._signal(run, signal.SIGKILL)

    def _notice_stop_requests(self) -> None:
        """Stop the tasks StopTask was called for (desired status STOPPED on the emulator)."""
        if self._describe_stopping is None:
            return
        arns = [run.task_arn for run in self._running.values() if run.stopping is None]
        if not arns:
            return
        requested = self._describe_stopping(arns)
        for run in list(self._running.values()):
            if run.stopping is None and run.task_arn in requested:
                self._begin_stop(run, "user", requested[run.task_arn] or "stopped by a user")

    def _begin_stop(self, run: _Running, kind: str, reason: str | None) -> None:
        """What ECS does to stop a task: SIGTERM now, SIGKILL after the stop timeout."""
        run.stopping, run.stop_reason = kind, reason
        run.kill_at = time.monotonic() + self._stop_grace_s
        log.info("task stopping", cron=run.cron, execution_id=run.execution_id,
                 why="timeout" if kind == "timeout" else f"StopTask: {reason}")
        self._signal(run, signal.SIGTERM)

    def _signal(self, run: _Running, sig: int) -> None:
        if run.process is None:
            return
        if run.container is not None:
            name = "KILL" if sig == signal.SIGKILL else "TERM"
            try:
                subprocess.run(["docker", "kill", f"--signal={name}", run.container],
                               capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            if sig != signal.SIGKILL:
                return
        try:
            os.killpg(run.process.pid, sig)  # the process and whatever it started
        except (ProcessLookupError, PermissionError):
            pass

    def _command(self, item: RegistryItem, task_arn: str
                 ) -> tuple[list[str] | None, dict[str, str], str | None]:
        """(command, extra environment, Docker container name)."""
        main = _main_override(item.overrides)
        env = {e["name"]: e["value"] for e in main.get("environment", [])}
        arguments = item.spec.container.arguments
        command = main.get("command") or (list(arguments) if arguments is not None else None)
        image = item.spec.container.image
        if self._use_docker:
            name = f"cronctl-{task_arn.rsplit('/', 1)[-1]}"
            flags = [f"--env={k}={v}" for k, v in env.items()]
            return ["docker", "run", "--rm", f"--name={name}", *flags, image,
                    *(command or [])], {}, name
        return command, env, None

    def _launch(self, execution: dict) -> None:
        item = self._registry_get(execution["cron"])
        now = datetime.now(UTC)
        if item is None:
            return
        command, env, container = self._command(item, execution["task_arn"])
        image = item.spec.container.image
        task_def = item.task_definition_arn or ""
        base = dict(region=self._region, account=self._account, cluster_arn=self._cluster_arn,
                    task_arn=execution["task_arn"], task_definition_arn=task_def,
                    started_by=attempt_token(execution["execution_id"],
                                             int(execution.get("attempt") or 1)),
                    created_at=now)
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
                                       stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            if output is not None:
                output.close()
            self._send_event(task_state_change(
                **base, version=2, last_status="STOPPED", desired_status="STOPPED",
                stopped_at=now, stop_code="TaskFailedToStart",
                stopped_reason=f"CannotStartContainerError: {exc}"))
            return
        timeout = item.spec.timeout_s  # what the sidecar sleeps
        run = _Running(execution["execution_id"], execution["cron"], execution["task_arn"],
                       task_def, process, now, now, time.monotonic() + timeout,
                       output=output, shipped_at=time.monotonic(), container=container,
                       started_by=base["started_by"])
        self._running[run.execution_id] = run
        if self._use_docker:
            log.info("task started", runner=self.mode, cron=run.cron,
                     execution_id=run.execution_id, image=image)
        else:
            log.info("task started", runner=self.mode, cron=run.cron,
                     execution_id=run.execution_id, image_not_used=image)
            self._note(run.execution_id, image)
        self._send_event(task_state_change(**base, version=2, last_status="RUNNING",
                                           desired_status="RUNNING", started_at=now))

    def _note(self, execution_id: str, image: str) -> None:
        if self._note_execution is None:
            return
        try:
            self._note_execution(execution_id, run_note(image))
        except Exception:  # noqa: BLE001 - a note must not stop the run
            log.exception("noting the run failed", execution_id=execution_id)

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

    def _finish(self, run: _Running, main_exit: int) -> None:
        """The STOPPED event, shaped by how the task ended: by itself (its essential container
        exited), by its timeout (the sidecar exited 124) or by StopTask (UserInitiated)."""
        self._running.pop(run.execution_id, None)
        self._ship_output(run, final=True)
        now = datetime.now(UTC)
        timeout_exit = 124 if run.stopping == "timeout" else None
        if run.stopping == "user":
            stop_code, reason = "UserInitiated", run.stop_reason
        else:
            stop_code, reason = "EssentialContainerExited", "Essential container in task exited"
        self._send_event(task_state_change(
            region=self._region, account=self._account, cluster_arn=self._cluster_arn,
            task_arn=run.task_arn, task_definition_arn=run.task_definition_arn,
            started_by=run.started_by or run.execution_id, version=3, last_status="STOPPED",
            desired_status="STOPPED", created_at=run.created_at, started_at=run.started_at,
            stopped_at=now, main_exit=main_exit, timeout_exit=timeout_exit,
            stop_code=stop_code, stopped_reason=reason))
        log.info("task stopped", cron=run.cron, execution_id=run.execution_id,
                 exit_code=main_exit, timed_out=timeout_exit == 124,
                 stopped_by=run.stop_reason if run.stopping == "user" else None)

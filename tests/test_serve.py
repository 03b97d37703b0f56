"""`cronctl serve` as an operator runs it: a separate process, driven by signals; and the
embedded mode with its local clock and task runner."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.cli import main
from reconciler.service.bootstrap import bootstrap
from reconciler.service.wiring import build_daemon
from tests.support.serve_process import ServeProcess
from tests.support.waiting import wait_for

CRON = """\
schedule: "cron(* * * * ? *)"
container:
  image: busybox
  arguments: ["sh", "-c", "echo tick"]
timeout: 30s
"""


def _serve(settings, repo, cluster: str | None = None) -> ServeProcess:
    """`cronctl serve` of ``repo`` (cron ``tick`` written into it) as an operator starts it,
    against the test's moto server: one pass at start, then on SIGHUP (the interval is an
    hour). Use as a context manager: started on entry, killed on exit if still running."""
    (repo / "crons.d").mkdir()
    (repo / "crons.d" / "tick.yaml").write_text(CRON)
    return ServeProcess(endpoint_url=settings.endpoint_url, namespace=settings.namespace,
                        repo=repo, cluster=cluster)


def test_serve_process_reconciles_on_sighup_and_stops_on_sigterm(settings, tmp_path):
    bootstrap(AwsClients(settings.with_(cluster="test")), settings.with_(cluster="test"))
    with _serve(settings, tmp_path, cluster="test") as daemon:
        first = daemon.wait_event("reconcile.pass", timeout=30)
        assert first["create"] == 3 and first["errors"] == []
        daemon.signal(signal.SIGHUP)
        second = daemon.wait_event("reconcile.pass", timeout=30, count=2)
        assert second["create"] == 0 and second["applied"] == 0
        assert daemon.terminate(timeout=30) == 0
    stopped = [e["component"] for e in daemon.events("component stopped")]
    assert sorted(stopped) == ["DaemonHttpServer", "EventConsumer", "PingSender", "ReconcileLoop",
                              "Watchdog"]


def test_serve_refuses_a_bad_listen_address(settings, capsys):
    assert main(["serve", "--listen", "nonsense", "--namespace", settings.namespace]) == 1
    assert "listen" in capsys.readouterr().err


def test_serve_refuses_a_missing_certificate_directory(settings, capsys, tmp_path,
                                                       monkeypatch):
    monkeypatch.setenv("CRONCTL_SNS_CERTS", str(tmp_path / "no-such-dir"))
    assert main(["serve", "--listen", "127.0.0.1:0", "--namespace", settings.namespace]) == 1
    err = capsys.readouterr().err
    assert "cronctl serve: SNS certificate directory (CRONCTL_SNS_CERTS) is not a directory" in err


@pytest.mark.parametrize("days", ["0", "-3"])
def test_serve_refuses_history_days_below_one(settings, capsys, days):
    assert main(["serve", "--history-days", days, "--namespace", settings.namespace]) == 2
    assert "--history-days must be at least 1" in capsys.readouterr().err


def test_embedded_mode_runs_scheduled_crons_locally(aws, tmp_path, monkeypatch, capsys):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, os.environ.get(key, "testing"))
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "tick.yaml").write_text(CRON)
    minutes = itertools.count()
    start = datetime.now(UTC)

    def fast_clock() -> datetime:
        return start + timedelta(seconds=61 * next(minutes))

    from reconciler.settings import Settings

    settings = Settings(repo=str(tmp_path), listen="127.0.0.1:0", namespace="demo",
                        sqs_wait_s=1, scheduler="scheduler")
    built = build_daemon(settings, embedded=True, clock_now=fast_clock)
    built.daemon.start()
    try:
        clients = AwsClients(built.settings)
        store = ExecutionStore(clients, built.settings)
        done = wait_for(lambda: [e for e in store.recent("tick", 10) if e.status == "SUCCESS"],
                        timeout=30, message="a successful local run")
        assert done[0].exit_code == 0
        assert done[0].trigger == "schedule"
        monkeypatch.setenv("AWS_ENDPOINT_URL", built.settings.endpoint_url)
        assert main(["logs", "tick", done[0].execution_id, "--namespace", "demo"]) == 0
        assert "tick" in capsys.readouterr().out.splitlines()
    finally:
        assert built.daemon.stop(budget_s=30)


def test_serve_stops_on_sigterm_when_its_log_stream_is_gone(tmp_path):
    """The reader of stderr died (a pipe to a pager or `tee` that was interrupted): logging
    drops the lines, and SIGTERM still stops every component and the process (in embedded mode
    the HTTP endpoint is stopped after several components that log)."""
    (tmp_path / "crons.d").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRONCTL_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", "--embedded", "--repo", str(tmp_path),
         "--listen", "127.0.0.1:0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "daemon.ready" in process.stderr.readline(), timeout=60,
                 message="the daemon to be ready")
        process.stderr.close()          # the log stream's reader is gone
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) in (0, 1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_serve_rebuilds_its_components_when_the_namespace_settings_change(settings, tmp_path):
    """`cronctl bootstrap` changing a recorded setting under a running daemon: the next pass
    finds it, every component stops and is built again with the new settings, and passes go
    on (no refusal until someone restarts the process)."""
    base = settings.with_(cluster="test")
    bootstrap(AwsClients(base), base)
    with _serve(settings, tmp_path) as daemon:
        first = daemon.wait_event("reconcile.pass", timeout=30)
        assert first["errors"] == []
        changed = base.with_(sidecar_image="public.ecr.aws/docker/library/busybox:1.36",
                             given={"sidecar_image": "--sidecar-image busybox:1.36"})
        bootstrap(AwsClients(changed), changed)
        daemon.signal(signal.SIGHUP)
        daemon.wait_event("reconcile.settings_changed", timeout=30)
        passes = wait_for(lambda: [p for p in daemon.events("reconcile.pass")[2:]
                                   if p["errors"] == []], timeout=60,
                          message="a pass of the rebuilt daemon")
        # The new sidecar image is in a new shared task definition: applied, not refused.
        assert passes[0]["create"] >= 1 and passes[0]["applied"] >= 1
        assert daemon.running
        assert daemon.terminate(timeout=30) == 0
    refused = [p for p in daemon.events("reconcile.pass") if p["errors"]]
    assert len(refused) == 1 and "changed since this process started" in refused[0]["errors"][0]
    assert len(daemon.events("daemon.ready")) == 2

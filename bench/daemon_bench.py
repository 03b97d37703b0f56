"""``daemon.rss``: resident memory of a ``cronctl serve`` process holding N crons.

The namespace holds N crons applied (the reconcile rows' namespace when they just ran with
this N, else bootstrapped and applied here), and a daemon is started on a Git repository
whose commit holds the same files, as deployed: its first pass is a sweep (nothing to
change), the next ones cheap, so its passes are at steady state. The floor, meanwhile: a
daemon on an empty cron folder's commit, on a namespace of its own (what the process costs
whatever N is). Each daemon is a real ``python -m reconciler serve`` subprocess
(``--repo DIR --path crons.d``, ``--interval 0.5``, ``AWS_ENDPOINT_URL`` = the moto server,
loopback listen address); the harness reads its ``GET /metrics`` until three reconcile passes
succeeded, then ``VmRSS`` (and ``VmHWM``, the peak) from ``/proc/<pid>/status``, then stops it
(SIGTERM, SIGKILL after a deadline). The row's calls and pass time are the daemon's own
(``cronctl_aws_api_calls_total`` and the pass duration histogram: every AWS call of the
process up to then, consumer polls and lease included).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.env import NAMESPACE, bench_settings, remove_dir, reset, row, scratch_dir
from bench.reconcile_bench import EDITED, files, snapshot
from reconciler.adapters.aws import AwsClients
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import run_pass
from reconciler.service.namespace import resolve

PASSES = 3
INTERVAL_S = 0.5
FLOOR_NAMESPACE = "bench0"
STOP_S = 30.0
ROOT = Path(__file__).resolve().parent.parent
_SERIES = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>[0-9.e+-]+)$')


def _free_port() -> int:
    from bench.env import _free_port as free
    return free()


def metrics(port: int) -> dict[tuple[str, str], float]:
    """``(series, labels) -> value`` from the daemon's ``/metrics``; {} when not answering."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    out = {}
    for line in text.splitlines():
        match = _SERIES.match(line)
        if match:
            out[(match["name"], match["labels"] or "")] = float(match["value"])
    return out


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def measure(url: str, folder: str, deadline_s: float, namespace: str = NAMESPACE) -> dict:
    """Start a daemon on ``folder``, wait for ``PASSES`` successful passes, read its memory."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        CRONCTL_SQS_WAIT_S="1", CRONCTL_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "reconciler", "serve", "--repo", folder, "--path",
               "crons.d", "--namespace", namespace, "--listen",
               f"127.0.0.1:{port}", "--interval", str(INTERVAL_S)]
    log = open(Path(folder) / "daemon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=folder)
    try:
        deadline = time.monotonic() + deadline_s
        seen: dict = {}
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"cronctl serve exited with {proc.returncode}: "
                                   f"{_tail(folder)}")
            seen = metrics(port)
            if seen.get(("cronctl_reconcile_passes_total", 'result="error"'), 0) > 0:
                raise RuntimeError(f"cronctl serve: a reconcile pass failed: {_tail(folder)}")
            if seen.get(("cronctl_reconcile_passes_total", 'result="ok"'), 0) >= PASSES:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"cronctl serve: {PASSES} passes not done in {deadline_s:.0f} s:"
                               f" {_tail(folder)}")
        memory = proc_status(proc.pid)
        calls: dict[str, int] = {}
        for (name, labels), value in seen.items():
            if name == "cronctl_aws_api_calls_total":
                parts = dict(p.split("=", 1) for p in labels.split(","))
                key = f"{parts['service'].strip(chr(34))}.{parts['operation'].strip(chr(34))}"
                calls[key] = int(value)
        passes = seen.get(("cronctl_reconcile_pass_duration_seconds_count", ""), 0) or 1
        pass_s = seen.get(("cronctl_reconcile_pass_duration_seconds_sum", ""), 0.0) / passes
        return {"rss_kib": memory["VmRSS"], "hwm_kib": memory["VmHWM"], "calls": calls,
                "pass_s": pass_s, "passes": int(passes)}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_S)
        log.close()


def _tail(folder: str) -> str:
    try:
        return (Path(folder) / "daemon.log").read_text(errors="replace")[-1500:]
    except OSError:
        return ""


def _write(folder: str, n: int, edited: frozenset[int]) -> None:
    for relative, data in files(n, edited).items():
        path = Path(folder, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    _commit(folder)


def _commit(folder: str) -> None:
    """Make ``folder`` a Git repository with its files committed: the daemon reads a
    commit, as deployed (a plain folder would make every pass a full one)."""
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q",
                  "--allow-empty", "-m", "crons"]):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                       timeout=300)


def run(url: str, n: int, applied: bool = False) -> list:
    """The row for ``n`` crons. ``applied``: the namespace already holds
    ``files(n, EDITED)`` applied (the reconcile rows just ran with this ``n``), else it is
    made here: reset, bootstrap, apply. The floor's daemon runs meanwhile, on a namespace of
    its own."""
    settings = bench_settings(url)
    admin = AwsClients(settings)
    edited = EDITED if applied else frozenset()
    if not applied:
        reset(url)
        bootstrap(admin, settings)
    # the apply records the namespace settings' version, as the CLI's would: the daemon's first
    # pass finds the commit applied under its own settings (else it would check in full)
    settings = resolve(admin, settings)
    floor_settings = bench_settings(url, namespace=FLOOR_NAMESPACE)
    bootstrap(AwsClients(floor_settings), floor_settings)
    empty, full = scratch_dir("bench-daemon0-"), scratch_dir("bench-daemon-")
    deadline = 120.0 + 0.25 * n
    try:
        Path(empty, "crons.d").mkdir()
        Path(empty, "crons.d", ".keep").write_bytes(b"")  # Git keeps no empty folder
        _commit(empty)
        _write(full, n, edited)
        with ThreadPoolExecutor(2, thread_name_prefix="bench-daemon") as pool:
            floor_future = pool.submit(measure, url, empty, deadline, FLOOR_NAMESPACE)
            if not applied:
                result = run_pass(admin, settings, dry_run=False,
                                  source=snapshot(n, "f" * 40, edited))
                if not result.ok:
                    raise RuntimeError(f"apply of {n} crons failed: {result.errors}")
            held = pool.submit(measure, url, full, deadline).result(timeout=deadline + 60)
            floor = floor_future.result(timeout=deadline + 60)
    finally:
        remove_dir(empty)
        remove_dir(full)
    mib = 1024.0
    return [row("daemon.rss", n, held["pass_s"], held["calls"], sum(floor["calls"].values()),
                floor["pass_s"], "the same daemon on an empty cron folder, same run: its RSS "
                "(floor_rss_mib), calls and mean pass time (0 calls per pass is the warm "
                "daemon's target at an unchanged commit)",
                rss_mib=round(held["rss_kib"] / mib, 1), peak_rss_mib=round(held["hwm_kib"] / mib, 1),
                floor_rss_mib=round(floor["rss_kib"] / mib, 1),
                floor_peak_rss_mib=round(floor["hwm_kib"] / mib, 1), passes=held["passes"],
                wall_s_is="mean reconcile pass duration (s) from the daemon's metrics",
                target_rss_mib=200)]

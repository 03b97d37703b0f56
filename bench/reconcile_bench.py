"""Benchmark 1: AWS API calls and wall time of reconcile passes for N crons.

Per backend and N, from an empty namespace (tables, topic and cluster only): (a) the first
apply, (b) a no-op pass right after, (c) a pass after editing one cron, (d) a dry-run with one
more cron edited (planned, not applied). Crons share ``IMAGES`` images, so the first apply
registers exactly ``IMAGES`` task definitions whatever N is.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.env import bench_settings, format_counts, reset, table, writes
from reconciler.adapters.aws import AwsClients
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.service.control.reconcile import PassResult, run_pass
from reconciler.settings import Settings
from tests.support.reconcile_env import cron_yaml, prepare

IMAGES = 5
COMMIT_A, COMMIT_B, COMMIT_C = "a" * 40, "b" * 40, "c" * 40


def cron_name(index: int) -> str:
    return f"job-{index:04d}"


def image(index: int) -> str:
    return f"public.ecr.aws/docker/library/busybox:1.3{index % IMAGES}"


def snapshot(n: int, commit: str, edited: frozenset[int] = frozenset()) -> Snapshot:
    """N cron files spread over ``IMAGES`` images; crons in ``edited`` have another schedule
    and one more environment variable."""
    files = {}
    for i in range(n):
        env = {"JOB": str(i), **({"EDITED": "yes"} if i in edited else {})}
        schedule = "rate(7 minutes)" if i in edited else f"cron({i % 60} {i % 24} * * ? *)"
        text = cron_yaml(schedule, image(i), env=env)
        files[f"crons.d/{cron_name(i)}.yaml"] = text.encode()
    return Snapshot(commit=commit, files=files)


@dataclass(frozen=True)
class Step:
    """One measured pass."""

    label: str
    result: PassResult

    @property
    def total(self) -> int:
        return sum(self.result.api_calls.values())


@dataclass(frozen=True)
class ReconcileRun:
    backend: str
    n: int
    steps: tuple[Step, ...]
    task_definitions_live: int

    def step(self, label_start: str) -> Step:
        return next(s for s in self.steps if s.label.startswith(label_start))


def _checked(label: str, result: PassResult) -> Step:
    if not result.ok:
        raise RuntimeError(f"{label}: pass failed: errors={result.errors} "
                           f"plan_errors={result.plan and result.plan.errors} "
                           f"apply_errors={result.apply_errors}")
    return Step(label, result)


def run_one(url: str, backend: str, n: int) -> ReconcileRun:
    """The four passes for ``n`` crons on ``backend``, from a reset moto server."""
    reset(url)
    settings: Settings = bench_settings(url, scheduler=backend)
    clients = prepare(settings, AwsClients(settings))
    steps = [
        _checked("a. first apply", run_pass(clients, settings, dry_run=False,
                                            source=snapshot(n, COMMIT_A))),
        _checked("b. no-op", run_pass(clients, settings, dry_run=False,
                                      source=snapshot(n, COMMIT_A))),
        _checked("c. 1 cron edited", run_pass(clients, settings, dry_run=False,
                                              source=snapshot(n, COMMIT_B, frozenset({0})))),
        _checked("d. dry-run, 1 more edited", run_pass(
            clients, settings, dry_run=True, source=snapshot(n, COMMIT_C, frozenset({0, 1})))),
    ]
    families = clients.client("ecs").list_task_definition_families(
        familyPrefix=f"{settings.namespace}-td-", status="ACTIVE")["families"]
    return ReconcileRun(backend, n, tuple(steps), len(families))


def render(runs: list[ReconcileRun]) -> str:
    rows = []
    for run in runs:
        for step in run.steps:
            counts = step.result.plan.counts() if step.result.plan else {}
            plan = f"+{counts.get('create', 0)} ~{counts.get('update', 0)} " \
                   f"-{counts.get('delete', 0)}"
            rows.append([run.backend, run.n, step.label, plan, step.total,
                         writes(step.result.api_calls), f"{step.result.duration_s:.2f}",
                         format_counts(step.result.api_calls)])
    head = ["backend", "N", "pass", "plan (+create ~update -delete)", "API calls",
            "writes", "wall s", "calls by operation"]
    tds = [f"- {r.backend} N={r.n}: RegisterTaskDefinition in first apply = "
           f"{r.step('a.').result.api_calls.get('ecs.RegisterTaskDefinition', 0)}, "
           f"active task definition families afterwards = {r.task_definitions_live}"
           for r in runs]
    return table(head, rows) + "\n\nShared task definitions (" + f"{IMAGES} images):\n" \
        + "\n".join(tds)

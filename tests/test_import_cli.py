"""`cronctl import` on real-world samples (tests/fixtures/import/): files written, reports,
refusals, exit codes; every written file loads and fires as its source."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from cronsim import CronSim

from reconciler.cli import main
from reconciler.core.cronfile.loader import load_file
from reconciler.core.importers.cron5 import expand_macro
from reconciler.core.schedule.expressions import next_fire_times

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "import"


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["import", *argv])
    return code, capsys.readouterr().out


def loaded(path: Path):
    spec, diagnostics = load_file(path.name, path.read_bytes())
    assert diagnostics == [], diagnostics
    return spec


def assert_same_fire_times(source: str, zone: str, aws: str) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    reference = CronSim(expand_macro(source), start.astimezone(ZoneInfo(zone)))
    expected = [next(reference).astimezone(UTC) for _ in range(100)]
    assert next_fire_times(aws, zone, start, 100) == expected


def test_copilot_samples(tmp_path, capsys):
    out = tmp_path / "crons.d"
    code, report = run(capsys, "copilot", str(SAMPLES / "copilot"), "--out", str(out),
                       "--image", "report-generator=123456789012.dkr.ecr.us-east-1."
                       "amazonaws.com/report-generator:v1")
    assert code == 1      # frontend is a Load Balanced Web Service
    assert sorted(p.name for p in out.iterdir()) == [
        "every-90m.yaml", "nightly-backup.yaml", "report-generator.yaml"]
    assert "frontend/manifest.yml: job 'frontend': type: 'Load Balanced Web Service' is not " \
           "a Scheduled Job" in report
    backup = out / "nightly-backup.yaml"
    text = backup.read_text()
    assert text.startswith(f"# Imported by cronctl import from {SAMPLES}/copilot/"
                           "nightly-backup/manifest.yml, job 'nightly-backup'\n")
    assert "description:" not in text
    spec = loaded(backup)
    assert spec.schedule == "cron(30 2 ? * 2-6 *)"
    assert_same_fire_times("30 2 * * 1-5", "UTC", spec.schedule)
    assert spec.container.image == "public.ecr.aws/docker/library/postgres:16"
    assert spec.container.arguments == ("pg_dump", "--host", "db.internal", "--dbname", "app",
                                        "--file", "/tmp/app.sql")
    assert dict(spec.container.env) == {"PGUSER": "backup", "RETENTION_DAYS": "14"}
    assert dict(spec.container.secrets) == {
        "PGPASSWORD": "/copilot/app/prod/secrets/db-password"}
    assert (spec.container.capacity.cpu, spec.container.capacity.memory) == (512, 1024)
    assert spec.timeout_s == 1800 and spec.concurrency == "allow"
    assert "not carried over: network: tasks are placed by the namespace's settings" in report
    report_gen = loaded(out / "report-generator.yaml")
    assert report_gen.schedule == "cron(0 0 * * ? *)"
    assert report_gen.container.image.endswith("/report-generator:v1")
    assert "not carried over: retries: cronctl does not retry failed runs yet" in report
    assert "not carried over: image.build: built by Copilot" in report
    assert loaded(out / "every-90m.yaml").schedule == "rate(90 minutes)"
    assert "#   retries: cronctl does not retry failed runs yet" in \
        (out / "report-generator.yaml").read_text()


def test_copilot_build_without_image_is_refused_naming_the_field(tmp_path, capsys):
    out = tmp_path / "out"
    code, report = run(capsys, "copilot", str(SAMPLES / "copilot" / "report-generator"),
                       "--out", str(out))
    assert code == 1
    assert not out.exists() or not any(out.iterdir())
    assert "image.build: an image built by Copilot from a Dockerfile is not an image " \
           "reference" in report
    assert "--image report-generator=IMAGE" in report


def test_kubernetes_samples(tmp_path, capsys):
    out = tmp_path / "crons.d"
    code, report = run(capsys, "kubernetes", str(SAMPLES / "kubernetes" / "hello.yaml"),
                       str(SAMPLES / "kubernetes" / "reports.yaml"), "--out", str(out))
    assert code == 0, report
    hello = loaded(out / "hello.yaml")
    assert hello.schedule == "cron(* * * * ? *)"
    assert hello.container.image == "busybox:1.28"
    assert hello.container.arguments == ("/bin/sh", "-c",
                                         "date; echo Hello from the Kubernetes cluster")
    assert hello.concurrency == "allow"
    assert "restartPolicy: OnFailure restarts the container" in report
    weekly = loaded(out / "weekly-report.yaml")
    assert (weekly.schedule, weekly.timezone) == ("cron(0 7 ? * MON *)", "Europe/Berlin")
    assert_same_fire_times("0 7 * * MON", "Europe/Berlin", weekly.schedule)
    assert weekly.concurrency == "forbid" and weekly.timeout_s == 1800
    assert weekly.container.arguments == ("--period", "week")
    assert dict(weekly.container.env) == {"REPORT_FORMAT": "pdf"}
    for words in ("env.DB_PASSWORD: valueFrom", "backoffLimit: cronctl does not retry",
                  "spec.startingDeadlineSeconds:", "spec.successfulJobsHistoryLimit:"):
        assert words in report
    month_end = loaded(out / "month-end.yaml")
    assert (month_end.schedule, month_end.timezone) == ("cron(0 18 L * ? *)",
                                                        "America/New_York")
    assert month_end.suspend is True and month_end.concurrency == "replace"


def test_kubernetes_bad_jobs_are_refused_and_the_others_imported(tmp_path, capsys):
    out = tmp_path / "crons.d"
    code, report = run(capsys, "kubernetes", str(SAMPLES / "kubernetes" / "bad.yaml"),
                       "--out", str(out), "--output", "json")
    assert code == 1
    result = json.loads(report)
    assert [job["name"] for job in result["imported"]] == ["fine"]
    assert [p.name for p in out.iterdir()] == ["fine.yaml"]
    refused = {r["origin"].split()[1]: r for r in result["refused"]}
    assert set(refused) == {"with-sidecar", "first-or-monday", "every-90s"}
    assert refused["with-sidecar"]["field"] == "spec.jobTemplate.spec.template.spec.containers"
    assert "2 containers (app, proxy)" in refused["with-sidecar"]["reason"]
    assert refused["first-or-monday"]["field"] == "spec.schedule"
    assert "days matching either" in refused["first-or-monday"]["reason"]
    assert "whole minutes" in refused["every-90s"]["reason"]
    assert all(r["source"].endswith("bad.yaml") for r in result["refused"])


def test_ecschedule_yaml_needs_images_and_carries_the_overrides(tmp_path, capsys):
    out = tmp_path / "crons.d"
    config = str(SAMPLES / "ecschedule" / "ecschedule.yaml")
    code, report = run(capsys, "ecschedule", config, "--out", str(out))
    assert code == 1 and not out.exists()
    assert report.count("taskDefinition: the image of task definition") == 2
    code, report = run(capsys, "ecschedule", config, "--out", str(out),
                       "--image", "taskname1=app:1", "--image", "taskName2=app:2")
    assert code == 0, report
    first = loaded(out / "taskname1.yaml")
    assert first.schedule == "cron(30 15 ? * * *)"
    assert first.container.arguments == ("subcommand1", "arg")
    assert dict(first.container.env) == {"FUGA": "bar", "HOGE": "foo"}
    assert loaded(out / "taskname2.yaml").container.image == "app:2"
    assert "not carried over: cluster: runs start on the namespace's cluster" in report


def test_ecschedule_json_and_templates(tmp_path, capsys):
    out = tmp_path / "crons.d"
    code, report = run(capsys, "ecschedule", str(SAMPLES / "ecschedule" / "sample.json"),
                       "--out", str(out), "--image", "hoge-task-name=app:1")
    assert code == 0, report
    spec = loaded(out / "hoge-task-name.yaml")
    assert spec.suspend is True and spec.container.arguments == ("subcmd", "argument")
    for key in ("group", "launch_type", "platform_version", "dead_letter_config",
                "propagateTags", "description"):
        assert f"not carried over: {key}:" in report
    code, report = run(capsys, "ecschedule", str(SAMPLES / "ecschedule" / "templated.yaml"),
                       "--out", str(out))
    assert code == 1
    assert "templated.yaml: the file uses template functions" in report


def test_legacy_files_are_rewritten_keeping_comments(tmp_path, capsys):
    out = tmp_path / "crons.d"
    code, report = run(capsys, "legacy", str(SAMPLES / "legacy"), "--out", str(out))
    assert code == 0, report
    pi = (out / "pi.yaml").read_text()
    original = (SAMPLES / "legacy" / "pi.yaml").read_text()
    assert pi.splitlines()[1:] == original.replace("\ndescription:", "\ncontainer:").splitlines()
    assert "# Demonstrates the legacy format" in pi
    spec = loaded(out / "pi.yaml")
    assert spec.container.image == "perl" and spec.schedule == "cron(*/10 * * * ? *)"
    assert "container:" in (out / "tick.yaml").read_text()


def test_dry_run_writes_nothing_and_prints_the_files(tmp_path, capsys):
    out = tmp_path / "crons.d"
    code, report = run(capsys, "kubernetes", str(SAMPLES / "kubernetes" / "hello.yaml"),
                       "--out", str(out), "--dry-run")
    assert code == 0 and not out.exists()
    assert f"would write {out}/hello.yaml" in report
    assert "    schedule: cron(* * * * ? *)" in report
    code, report = run(capsys, "kubernetes", str(SAMPLES / "kubernetes" / "hello.yaml"),
                       "--out", str(out), "--dry-run", "--output", "json")
    document = yaml.safe_load(json.loads(report)["imported"][0]["content"])
    assert document["container"]["image"] == "busybox:1.28"


def test_an_existing_file_is_never_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "crons.d"
    out.mkdir()
    (out / "hello.yaml").write_text("# mine\n")
    hello = str(SAMPLES / "kubernetes" / "hello.yaml")
    code, report = run(capsys, "kubernetes", hello, "--out", str(out))
    assert code == 1 and (out / "hello.yaml").read_text() == "# mine\n"
    assert f"{out}/hello.yaml exists; not overwritten (--force replaces it)" in report
    code, report = run(capsys, "kubernetes", hello, "--out", str(out), "--force")
    assert code == 0 and "busybox:1.28" in (out / "hello.yaml").read_text()


@pytest.mark.parametrize(("source", "text", "words"), [
    ("kubernetes", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
     "kind: 'ConfigMap' is not a CronJob"),
    ("kubernetes", "key: [unclosed\n", "not valid YAML"),
    ("copilot", "just: a map\n", "type: not a Copilot manifest"),
    ("ecschedule", "- a list\n", "not an ecschedule configuration"),
])
def test_files_that_are_not_what_the_importer_expects(tmp_path, capsys, source, text, words):
    path = tmp_path / ("manifest.yml" if source == "copilot" else "input.yaml")
    path.write_text(text)
    code, report = run(capsys, source, str(path), "--out", str(tmp_path / "out"))
    assert code == 1 and not (tmp_path / "out").exists()
    assert f"refused: {path}" in report and words in report

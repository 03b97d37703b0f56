"""The loader: cron files -> CronSpec, every error at its file, line and field."""

from __future__ import annotations

import pytest

from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.core.cronfile.loader import load_file, load_snapshot
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.spec import Capacity, ContainerSpec, CronSpec, Notifications

PI = b"""\
schedule: "cron(*/10 * * * ? *)"
description:
  image: perl
  arguments:
    - bash
    - -c
    - perl -Mbignum=bpi -wle "print bpi($PI_ACCURACY)"
  env:
    PI_ACCURACY: "2000"
"""


def cron(schedule: str = "rate(5 minutes)", extra: str = "") -> bytes:
    """A valid file with ``schedule`` on line 2, and ``extra`` lines appended."""
    return (f"# a cron\nschedule: \"{schedule}\"\ncontainer:\n  image: busybox\n{extra}"
            ).encode()


def only_error(path: str, data: bytes) -> Diagnostic:
    spec, diagnostics = load_file(path, data)
    assert spec is None
    assert len(diagnostics) == 1, diagnostics
    return diagnostics[0]


def test_the_design_example_validates_with_every_default_applied():
    spec, diagnostics = load_file("crons.d/pi.yaml", PI)
    assert diagnostics == []
    assert spec == CronSpec(
        name="pi",
        file="crons.d/pi.yaml",
        schedule="cron(*/10 * * * ? *)",
        container=ContainerSpec(
            image="perl",
            arguments=("bash", "-c", 'perl -Mbignum=bpi -wle "print bpi($PI_ACCURACY)"'),
            env=(("PI_ACCURACY", "2000"),),
            secrets=(),
            capacity=Capacity(cpu=256, memory=512),
        ),
        timezone="UTC", role=None, timeout_s=86400, concurrency="forbid", suspend=False,
        notifications=Notifications(), docs=None,
    )


def test_every_field_is_read_and_converted():
    data = b"""\
name: nightly-report
schedule: "cron(30 7 ? * MON-FRI *)"
timezone: Europe/Berlin
container:
  image: python:3.12-slim
  arguments: [python, -c, "print(1)"]
  env: {B: "2", A: "1"}
  secrets:
    SMTP: arn:aws:secretsmanager:eu-central-1:123456789012:secret:smtp-AbCdEf
    DB: /reports/db
    KEY: arn:aws:ssm:eu-central-1:123456789012:parameter/reports/key
  capacity: {cpu: S, memory: 2048}
role: arn:aws:iam::123456789012:role/report
timeout: 30m
concurrency: replace
suspend: true
notifications:
  no-run-threshold: 600
  ran-longer-than-threshold: 2h
  slack: "#reports"
  pagerduty: 0123456789abcdef0123456789abcdef
meta:
  docs: https://wiki.example.com/report
"""
    spec, diagnostics = load_file("crons.d/team/report.yaml", data)
    assert diagnostics == []
    assert spec.name == "nightly-report"
    assert spec.file == "crons.d/team/report.yaml"
    assert spec.timezone == "Europe/Berlin"
    assert spec.container.env == (("A", "1"), ("B", "2"))
    assert dict(spec.container.secrets)["DB"] == "/reports/db"
    assert spec.container.capacity == Capacity(512, 2048)
    assert spec.role == "arn:aws:iam::123456789012:role/report"
    assert (spec.timeout_s, spec.concurrency, spec.suspend) == (1800, "replace", True)
    assert spec.notifications == Notifications(600, 7200, "#reports",
                                               "0123456789abcdef0123456789abcdef")
    assert spec.docs == "https://wiki.example.com/report"


@pytest.mark.parametrize("capacity, expected", [
    ("", Capacity(256, 512)),
    ("  capacity: {cpu: M}\n", Capacity(1024, 2048)),
    ("  capacity: {cpu: 3XL}\n", Capacity(16384, 32768)),
    ("  capacity: {cpu: 1024}\n", Capacity(1024, 2048)),
    ("  capacity: {memory: L}\n", Capacity(512, 4096)),
    ("  capacity: {cpu: 4096, memory: 30720}\n", Capacity(4096, 30720)),
    ("  capacity: {cpu: XS, memory: 2048}\n", Capacity(256, 2048)),
])
def test_capacity_sizes_numbers_and_defaults(capacity, expected):
    spec, diagnostics = load_file("crons.d/job.yaml", cron(extra=capacity))
    assert diagnostics == []
    assert spec.container.capacity == expected


@pytest.mark.parametrize("value, seconds", [
    ("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ('"45"', 45),
])
def test_durations(value, seconds):
    spec, diagnostics = load_file("crons.d/job.yaml", cron(extra=f"timeout: {value}\n"))
    assert diagnostics == []
    assert spec.timeout_s == seconds


# Each schedule line is line 2 of the file; column 11 is where the quoted value starts.
@pytest.mark.parametrize("schedule, fragment", [
    ("cron(* * * * *)", "6 fields"),
    ("cron(0 12 1 * MON *)", "both set"),
    ("cron(0 12 ? * ? *)", "both ?"),
    ("rate(1 minutes)", "singular"),
    ("rate(0 minutes)", "positive"),
    ("rate(5 seconds)", "'seconds' is not supported"),
    ("cron(0 12 ? * 3#1,6#3 *)", "3#1,6#3"),
    ("cron(60 12 * * ? *)", "60 is out of range"),
    ("cron(0 12 * * ? 2300)", "2300 is out of range"),
])
def test_schedule_errors_arrive_on_the_schedule_line(schedule, fragment):
    error = only_error("crons.d/job.yaml", cron(schedule))
    assert (error.file, error.line, error.column, error.field) == (
        "crons.d/job.yaml", 2, 11, "schedule")
    assert fragment in error.message


@pytest.mark.parametrize("extra, line, column, field, fragment", [
    ("schedul: x\n", 5, 1, "schedul", "unknown field 'schedul' (did you mean 'schedule'?)"),
    ("  imag: x\n", 5, 3, "container.imag", "unknown field 'imag' (did you mean 'image'?)"),
    ("name: MyJob\n", 5, 7, "name", "must be lower case: use 'myjob'"),
    (f"name: {'a' * 70}\n", 5, 7, "name", "70 characters long; at most 64"),
    ("timeout: 0\n", 5, 10, "timeout", "must be more than 0"),
    ("timeout: 5x\n", 5, 10, "timeout", "'5x' is not a duration"),
    ("timeout: 400d\n", 5, 10, "timeout", "at most 365d"),
    ("timeout: 1:30\n", 5, 10, "timeout",
     "'1:30' is not a plain decimal number (YAML 1.1 reads it as 90); write it in decimal"),
    ("timeout: 010\n", 5, 10, "timeout", "'010' is not a plain decimal number"),
    ("  capacity: {memory: 0x800}\n", 5, 22, "container.capacity.memory",
     "'0x800' is not a plain decimal number (YAML 1.1 reads it as 2048)"),
    ("  capacity: {cpu: '1024'}\n", 5, 19, "container.capacity.cpu",
     "the number of CPU units must not be quoted: write 1024, not '1024'"),
    ("  env:\n    PI_ACCURACY: 2000\n", 6, 18, "container.env.PI_ACCURACY",
     "must be a string, got integer 2000; quote it: PI_ACCURACY: \"2000\""),
    ("  env:\n    DEBUG: yes\n", 6, 12, "container.env.DEBUG", "got boolean true; quote it"),
    ("description:\n  image: x\n", 5, 1, "description",
     "'description' and 'container' are both given"),
    ("timezone: Mars/Olympus\n", 5, 11, "timezone", "unknown time zone 'Mars/Olympus'"),
    ("timezone: Europe/Berln\n", 5, 11, "timezone", "did you mean 'Europe/Berlin'?"),
    ("timezone: localtime\n", 5, 11, "timezone", "unknown time zone 'localtime'"),
    ("timezone: Factory\n", 5, 11, "timezone", "unknown time zone 'Factory'"),
    ("concurrency: sometimes\n", 5, 14, "concurrency", "must be one of forbid, allow, replace"),
    ("role: my-role\n", 5, 7, "role", "IAM role ARN"),
    ("  secrets: {X: 'arn:aws:s3:::bucket'}\n", 5, 16, "container.secrets.X",
     "SSM parameter name or ARN"),
    ("  capacity: {cpu: 256, memory: 1536}\n", 5, 32, "container.capacity.memory",
     "Fargate allows 512, 1024 or 2048 MiB with 256 CPU units"),
    ("  capacity: {cpu: xl}\n", 5, 19, "container.capacity.cpu", "did you mean 'XL'?"),
    ("  arguments: [sh, 3]\n", 5, 19, "container.arguments[1]", "must be a string"),
    ("  arguments: []\n", 5, 14, "container.arguments", "must not be an empty list"),
    ("notifications:\n  slack: team\n", 6, 10, "notifications.slack", "'#team'"),
    ("notifications:\n  no-run-threshold: 0\n", 6, 21, "notifications.no-run-threshold",
     "more than 0"),
    ("suspend: maybe\n", 5, 10, "suspend", "must be true or false"),
    ("meta: {owner: me}\n", 5, 8, "meta.owner", "unknown field 'owner'"),
    ("schedule: rate(1 day)\n", 5, 1, "schedule", "duplicate key 'schedule' (first given on"
     " line 2)"),
])
def test_each_bad_field_gets_a_specific_located_error(extra, line, column, field, fragment):
    error = only_error("crons.d/job.yaml", cron(extra=extra))
    assert (error.file, error.line, error.column, error.field) == (
        "crons.d/job.yaml", line, column, field)
    assert fragment in error.message


def test_a_missing_container_and_a_missing_image():
    error = only_error("crons.d/job.yaml", b'schedule: "rate(1 day)"\n')
    assert (error.line, error.field) == (1, "")
    assert "missing the container" in error.message
    error = only_error("crons.d/job.yaml", b'schedule: "rate(1 day)"\ncontainer:\n  env: {}\n')
    assert (error.line, error.column, error.field) == (2, 1, "container")
    assert "missing required field 'image'" in error.message


def test_a_name_from_an_invalid_file_stem_says_where_it_comes_from():
    error = only_error("crons.d/My_Job.yaml", cron())
    assert (error.line, error.column, error.field) == (1, 1, "name")
    assert "comes from the file name 'My_Job'" in error.message


def test_all_errors_of_one_file_are_reported_at_once():
    data = cron("rate(5 seconds)", "timeout: 0\nschedul: x\n  \n")
    spec, diagnostics = load_file("crons.d/job.yaml", data)
    assert spec is None
    assert [(d.line, d.field) for d in diagnostics] == [
        (2, "schedule"), (5, "timeout"), (6, "schedul")]


def test_several_errors_in_several_files_are_reported_together_and_sorted():
    snapshot = Snapshot(commit="c" * 40, files={
        "crons.d/b.yaml": cron("rate(0 minutes)", "timeout: 0\n"),
        "crons.d/a.yaml": cron(extra="name: A\n"),
        "crons.d/ok.yaml": cron(),
        "crons.d/team/c.yml": b"",
    })
    result = load_snapshot(snapshot)
    assert [(d.file, d.line, d.field) for d in result.diagnostics] == [
        ("crons.d/a.yaml", 5, "name"),
        ("crons.d/b.yaml", 2, "schedule"),
        ("crons.d/b.yaml", 5, "timeout"),
        ("crons.d/team/c.yml", 1, ""),
    ]
    assert [spec.name for spec in result.specs] == ["ok"]
    assert result.held_back == {"A", "b", "c"}
    assert result.files == {"ok": "crons.d/ok.yaml"}


def test_two_files_with_one_name_are_both_named_and_both_held_back():
    snapshot = Snapshot(commit=None, files={
        "crons.d/one/report.yaml": cron(),
        "crons.d/two.yaml": cron(extra="name: report\n"),
        "crons.d/other.yaml": cron(),
    })
    result = load_snapshot(snapshot)
    assert [(d.file, d.line, d.column, d.field) for d in result.diagnostics] == [
        ("crons.d/one/report.yaml", 1, 1, "name"), ("crons.d/two.yaml", 5, 7, "name")]
    for diagnostic in result.diagnostics:
        assert "crons.d/one/report.yaml" in diagnostic.message
        assert "crons.d/two.yaml" in diagnostic.message
        assert "name 'report' is used by 2 files" in diagnostic.message
    assert result.held_back == {"report"}
    assert [spec.name for spec in result.specs] == ["other"]


def test_only_yaml_files_under_the_cron_path_are_cron_files():
    snapshot = Snapshot(commit=None, files={
        "crons.d/a.yaml": cron(), "crons.d/deep/b.yml": cron(), "crons.d/notes.txt": b"x: [",
        "other/c.yaml": b"not: [valid", "crons.dx/d.yaml": b"[",
    })
    result = load_snapshot(snapshot, "crons.d")
    assert result.diagnostics == ()
    assert [spec.name for spec in result.specs] == ["a", "b"]
    assert [spec.name for spec in load_snapshot(snapshot, "./crons.d/deep/").specs] == ["b"]


def test_refused_files_are_passed_through_and_hold_back_their_stem():
    refused = Diagnostic("crons.d/big.yaml", 0, 0, "", "file is 300 KiB; the limit is 256 KiB")
    snapshot = Snapshot(commit=None, files={"crons.d/a.yaml": cron()}, refused=(refused,))
    result = load_snapshot(snapshot)
    assert result.diagnostics == (refused,)
    assert result.held_back == {"big"}
    assert [spec.name for spec in result.specs] == ["a"]


def test_a_refused_folder_link_is_reported_and_holds_back_no_cron():
    """``crons.d/up -> ..`` is refused by the source as a loop: reported, but its name is no
    cron's, so a cron named ``up`` elsewhere is not held back."""
    loop = Diagnostic("crons.d/up", 1, 1, "", "symlink loop: it points to '..', a folder "
                                              "that contains it; it is not followed")
    snapshot = Snapshot(commit=None, files={"crons.d/team/up.yaml": cron()}, refused=(loop,))
    result = load_snapshot(snapshot)
    assert result.diagnostics == (loop,)
    assert result.held_back == frozenset()
    assert [spec.name for spec in result.specs] == ["up"]


def test_an_invalid_file_holds_back_the_name_it_declares():
    snapshot = Snapshot(commit=None, files={
        "crons.d/x.yaml": cron("rate(0 minutes)", "name: real-name\n")})
    result = load_snapshot(snapshot)
    assert result.held_back == {"real-name"}
    assert result.specs == ()

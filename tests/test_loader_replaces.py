"""``replaces: {rule: NAME}``: read into the CronSpec, refused at its file and line when it is
not a rule name, kept out of the stored spec (and its hash) when absent."""

from __future__ import annotations

import pytest

from reconciler.cli import main
from reconciler.core.cronfile.loader import load_file
from reconciler.core.spec import CronSpec, Replaces

BASE = 'schedule: "cron(*/5 * * * ? *)"\ncontainer:\n  image: busybox\n'


def load(extra: str):
    return load_file("crons.d/invoices.yaml", (BASE + extra).encode())


@pytest.mark.parametrize("rule", ["nightly-invoices", "Billing.Invoices_v2", "a" * 64])
def test_a_rule_name_is_read_into_the_spec(rule):
    spec, diagnostics = load(f"replaces:\n  rule: {rule}\n")
    assert diagnostics == []
    assert spec.replaces == Replaces(rule=rule)
    stored = spec.to_dict()
    assert stored["replaces"] == {"rule": rule}
    assert CronSpec.from_dict(stored, spec.file) == spec


def test_absent_it_is_not_stored_and_the_hash_stays_what_it_was():
    spec, _ = load("")
    assert spec.replaces is None and "replaces" not in spec.to_dict()
    with_it, _ = load("replaces:\n  rule: nightly-invoices\n")
    assert with_it.spec_hash() != spec.spec_hash()
    # a spec stored before the field existed reads back equal, with the same hash
    assert CronSpec.from_dict(spec.to_dict(), spec.file).spec_hash() == spec.spec_hash()


@pytest.mark.parametrize("extra, line, column, field, fragment", [
    ("replaces:\n  rule: 'bad name'\n", 5, 9, "replaces.rule",
     "must be an EventBridge rule name: 1 to 64 letters, digits, '.', '_' or '-'; "
     "got 'bad name'"),
    ("replaces:\n  rule: rule/x\n", 5, 9, "replaces.rule", "got 'rule/x'"),
    (f"replaces:\n  rule: {'a' * 65}\n", 5, 9, "replaces.rule", "1 to 64 letters"),
    ("replaces:\n  rule: ''\n", 5, 9, "replaces.rule", "got ''"),
    ("replaces:\n  rule: 12\n", 5, 9, "replaces.rule", "must be a string, got integer 12"),
    ("replaces: nightly-invoices\n", 4, 11, "replaces",
     "must be a mapping, got string 'nightly-invoices'"),
    ("replaces:\n  name: nightly-invoices\n", 5, 3, "replaces.name",
     "unknown field 'name'"),
])
def test_what_is_not_a_rule_name_is_refused_at_its_line(extra, line, column, field, fragment):
    spec, diagnostics = load(extra)
    assert spec is None
    problem = next(d for d in diagnostics if d.field == field)
    assert (problem.file, problem.line, problem.column) == ("crons.d/invoices.yaml", line,
                                                            column)
    assert fragment in problem.message


def test_a_missing_rule_is_named():
    spec, diagnostics = load("replaces: {}\n")
    assert spec is None
    assert [(d.line, d.field, d.message) for d in diagnostics] == [
        (4, "replaces", "missing required field 'rule'")]


def test_cronctl_validate_names_the_file_and_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("CRONCTL_PATH", "CRONCTL_REPO", "CRONCTL_REF"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "invoices.yaml").write_text(BASE + "replaces:\n  rule: a:b\n")
    assert main(["validate"]) == 1
    assert ("crons.d/invoices.yaml:5:9: replaces.rule: must be an EventBridge rule name: "
            "1 to 64 letters, digits, '.', '_' or '-'; got 'a:b'") in capsys.readouterr().out

"""The loader refuses unreadable and hostile files with a located, specific error."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reconciler.core.cronfile.loader import load_file
from reconciler.core.cronfile.yaml_lines import MAX_NODES


def only_error(data: bytes, path: str = "crons.d/job.yaml"):
    spec, diagnostics = load_file(path, data)
    assert spec is None
    assert len(diagnostics) == 1, diagnostics
    return diagnostics[0]


@pytest.mark.parametrize("data", [b"", b"\n\n", b"# only a comment\n"])
def test_an_empty_file(data):
    error = only_error(data)
    assert (error.file, error.line, error.column) == ("crons.d/job.yaml", 1, 1)
    assert "file is empty" in error.message


@pytest.mark.parametrize("data, kind", [
    (b"- schedule: rate(1 day)\n", "list"), (b"just text\n", "string"), (b"~\n", "null"),
    (b"\n\n42\n", "integer"),
])
def test_a_document_that_is_not_a_mapping(data, kind):
    error = only_error(data)
    assert "must be a mapping of fields" in error.message
    assert error.message.endswith(f"got {kind}")
    assert error.line == data.count(b"\n", 0, len(data) - len(data.lstrip())) + 1


def test_non_utf8_bytes_are_located():
    data = b'schedule: "rate(1 day)"\ncontainer:\n  image: caf\xe9\n'
    error = only_error(data)
    assert (error.line, error.column) == (3, 13)
    assert error.message == "not valid UTF-8 at byte 47"


def test_an_oversized_file_is_refused_without_parsing():
    data = b"# padding\n" * 30_000
    error = only_error(data)
    assert (error.line, error.column) == (1, 1)
    assert "limited to 262144 bytes (256 KiB)" in error.message


def test_an_alias_bomb_is_refused():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    data = ("\n".join(lines) + "\n").encode()
    error = only_error(data)
    assert error.message == f"YAML aliases expand beyond {MAX_NODES} nodes"
    assert (error.line, error.column) == (5, 1)  # e: 9**5 nodes, the first one too many


def test_a_recursive_alias_is_refused():
    error = only_error(b"schedule: &s [*s]\n")
    assert "nested deeper than" in error.message
    assert error.line == 1


def test_deep_nesting_is_refused():
    error = only_error(b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    assert "nested" in error.message


def test_several_documents_are_refused():
    error = only_error(b'schedule: "rate(1 day)"\ncontainer: {image: x}\n---\nname: two\n')
    assert error.line == 4
    assert "one YAML document" in error.message


def test_python_tags_are_refused():
    data = b'schedule: !!python/object/apply:os.system ["true"]\ncontainer: {image: x}\n'
    error = only_error(data)
    assert (error.line, error.column, error.field) == (1, 11, "schedule")
    assert "unsupported YAML tag" in error.message
    error = only_error(b'schedule: !!python/name:os.system x\ncontainer: {image: x}\n')
    assert (error.line, error.column, error.field) == (1, 11, "schedule")
    assert "could not determine a constructor" in error.message


def test_a_syntax_error_is_located():
    error = only_error(b'schedule: "rate(1 day)"\ncontainer:\n  image: [x\n')
    assert error.line == 4
    assert error.message.startswith("invalid YAML:")


def test_a_control_character_is_located():
    error = only_error(b'schedule: "rate(1 day)"\ncontainer: {image: "a\x07"}\n')
    assert (error.line, error.column) == (2, 22)
    assert "unacceptable character #x0007" in error.message


def test_merge_keys_work_and_explicit_keys_win():
    data = (b'schedule: "rate(1 day)"\nbase: &base {image: x, env: {A: "1"}}\n'
            b'container:\n  <<: *base\n  image: y\n')
    spec, diagnostics = load_file("crons.d/job.yaml", data)
    assert [(d.line, d.message) for d in diagnostics] == [(2, "unknown field 'base'")]
    data = b'schedule: "rate(1 day)"\ncontainer:\n  <<: {image: x, env: {A: "1"}}\n  image: y\n'
    spec, diagnostics = load_file("crons.d/job.yaml", data)
    assert diagnostics == []
    assert (spec.container.image, spec.container.env) == ("y", (("A", "1"),))


def test_the_schema_is_valid_and_describes_every_field():
    text = (resources.files("reconciler") / "schemas" / "cron.schema.json").read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "https://cronctl.dev/schemas/cron.schema.json"

    def objects(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield where, node
            for key, child in node.items():
                yield from objects(child, f"{where}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                yield from objects(child, f"{where}/{index}")

    found = list(objects(schema, "#"))
    assert len(found) >= 6
    for where, node in found:
        assert "additionalProperties" in node, where
        if node["additionalProperties"] is not False:  # free keys: env, secrets
            assert "propertyNames" in node, where
        for name, prop in node.get("properties", {}).items():
            assert prop.get("description"), f"{where}/{name}"


@pytest.mark.parametrize("data, fragment", [
    (b"schedule: 2024-02-30\n", "invalid YAML value '2024-02-30': day is out of range"),
    (b"schedule: !!int 0xZZ\n", "invalid YAML value '0xZZ'"),
    (b"schedule: !!float abc\n", "invalid YAML value 'abc'"),
])
def test_scalars_that_cannot_be_converted_are_located(data, fragment):
    spec, diagnostics = load_file("crons.d/job.yaml", data + b"container: {image: x}\n")
    assert spec is None
    assert [(d.line, d.column, d.field) for d in diagnostics] == [(1, 11, "schedule")]
    assert fragment in diagnostics[0].message


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.dates(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["image", "env", "cpu", "memory", "A", "x"]),
                      children, max_size=4),
    max_leaves=12)
cron_documents = st.dictionaries(
    st.sampled_from(["name", "schedule", "timezone", "container", "description", "role",
                     "timeout", "concurrency", "suspend", "notifications", "meta", "other"]),
    yaml_values, max_size=8)


@settings(max_examples=150, deadline=None)
@given(cron_documents)
def test_any_document_gives_a_spec_or_located_errors_never_a_crash(document):
    data = yaml.safe_dump(document, allow_unicode=True).encode()
    spec, diagnostics = load_file("crons.d/job.yaml", data)
    assert (spec is None) == bool(diagnostics)
    assert all(d.line >= 1 and d.column >= 1 and d.message for d in diagnostics)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_give_a_spec_or_located_errors_never_a_crash(data):
    spec, diagnostics = load_file("crons.d/job.yaml", data)
    assert (spec is None) == bool(diagnostics)
    assert all(d.line >= 1 and d.column >= 1 and d.message for d in diagnostics)


field_values = st.sampled_from([
    None, True, 0, 1, 90, 256, 1536, 2048, "XS", "M", "3XL", "xl", "90s", "2h", "0s", "",
    "UTC", "Europe/Berlin", "forbid", "allow", "#team", "rate(5 minutes)", "cron(0 1 * * ? *)",
    "arn:aws:iam::123456789012:role/x", "https://x.example", [], ["sh"], {}, {"A": "1"},
    {"cpu": "S"}, {"cpu": 512, "memory": 4096}, {"memory": "L"}, {"image": "busybox"},
])
field_paths = st.sampled_from([
    ("name",), ("timezone",), ("timeout",), ("concurrency",), ("suspend",), ("role",),
    ("container", "arguments"), ("container", "env"), ("container", "secrets"),
    ("container", "capacity"), ("container", "capacity", "cpu"),
    ("container", "capacity", "memory"), ("notifications", "slack"),
    ("notifications", "no-run-threshold"), ("meta", "docs"), ("description",),
])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(field_paths, field_values), max_size=4))
def test_nearly_valid_documents_build_a_spec_or_report_errors(changes):
    document = {"schedule": "rate(5 minutes)", "container": {"image": "busybox"}}
    for path, value in changes:
        target = document
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[path[-1]] = value
    spec, diagnostics = load_file("crons.d/job.yaml", yaml.safe_dump(document).encode())
    assert (spec is None) == bool(diagnostics)
    if spec is not None:
        assert spec.name == "job" or spec.name == document.get("name")
        assert spec.timeout_s > 0


@pytest.mark.parametrize("name", ["hello\n", "hello\r\n", "hello\nworld", "\nhello", "hello\t"])
def test_a_name_is_matched_whole_so_a_trailing_newline_is_refused(name):
    data = (f"name: {json.dumps(name)}\nschedule: \"rate(1 day)\"\ncontainer:\n  image: x\n"
            ).encode()
    error = only_error(data)
    assert (error.line, error.column, error.field) == (1, 7, "name")
    assert error.message.startswith(f"name {name!r} is not valid: lower-case letters")
    assert "\n" not in error.message  # the diagnostic stays on one line


def test_a_file_name_with_a_newline_is_no_cron_name():
    error = only_error(b'schedule: "rate(1 day)"\ncontainer:\n  image: x\n',
                       path="crons.d/hello\n.yaml")
    assert error.field == "name"
    assert error.message.startswith("name 'hello\\n' is not valid")
    assert "(the name comes from the file name 'hello\\n'; set 'name:'" in error.message
    assert "\n" not in error.message


def test_the_name_pattern_refuses_a_trailing_newline_even_with_re_match():
    import re

    from reconciler.core.spec import NAME_PATTERN

    assert re.fullmatch(NAME_PATTERN, "hello") and re.match(NAME_PATTERN, "hello")
    assert re.match(NAME_PATTERN, "hello\n") is None
    assert re.fullmatch(NAME_PATTERN, "hello\n") is None


@pytest.mark.parametrize("field, value", [
    ("image", "busybox\\n"),
    ("role", "arn:aws:iam::123456789012:role/x\\n"),
    ("slack", "#team\\n"),
])
def test_a_final_newline_does_not_slip_through_a_schema_pattern(field, value):
    """Python's ``$`` matches before a final newline; the schema's patterns mean the end."""
    lines = ['schedule: "rate(1 minute)"', "container:", '  image: "busybox"']
    if field == "image":
        lines[-1] = f'  image: "{value}"'
    elif field == "role":
        lines.append(f'role: "{value}"')
    else:
        lines += ["notifications:", f'  slack: "{value}"']
    spec, diagnostics = load_file("crons.d/a.yaml", ("\n".join(lines) + "\n").encode())
    assert spec is None
    [problem] = diagnostics
    assert field in problem.field and "\\n" in problem.message

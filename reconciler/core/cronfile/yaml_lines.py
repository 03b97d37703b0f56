"""Safe YAML parsing that remembers where every key and value was written.

``parse(text)`` composes the single document with ``yaml.SafeLoader`` (no Python object
tags) and builds plain values itself, so that it can:

- record the 1-based line/column of every mapping key and every value, by path
  (a tuple of keys and list indexes);
- refuse duplicate mapping keys (YAML allows the parser to keep either one silently);
- refuse alias bombs: aliases are expanded while counting nodes, and a document that
  expands beyond ``MAX_NODES`` nodes or ``MAX_DEPTH`` levels is refused;
- refuse integers that YAML 1.1 reads in another base (``1:30``, ``010``, ``0x10``).

Mapping keys are always their source text (``on: 1`` has the key ``"on"``, not ``True``).
Problems come back as ``YamlProblem`` values; nothing here raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_NODES = 10_000
MAX_DEPTH = 64
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"
INT_TAG = "tag:yaml.org,2002:int"
# YAML 1.1 also reads 1:30 (base 60), 010 (octal), 0x10, 0b10 and 1_000 as integers: a
# `timeout: 1:30` would silently be 90 seconds. Only plain decimal integers are accepted.
DECIMAL = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")

Path = tuple  # of str keys and int list indexes


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column in the file."""

    line: int
    column: int


@dataclass(frozen=True)
class YamlProblem:
    """A reason the document could not be read (syntax, duplicate key, alias bomb, ...)."""

    position: Position
    message: str
    path: Path = ()


@dataclass
class ParsedYaml:
    """The document's value, where each part of it was written, and what went wrong.

    ``value`` is ``None`` for an empty stream. ``keys[path]`` is where the key of the entry at
    ``path`` was written; ``values[path]`` where its value starts (``values[()]`` is the
    document). When ``problems`` is not empty, ``value`` may be partial.
    """

    value: object = None
    empty: bool = True
    keys: dict[Path, Position] = field(default_factory=dict)
    values: dict[Path, Position] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """Where ``path`` was written (its key when ``key``), else its nearest ancestor."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return Position(1, 1)


class _TooBig(Exception):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


def _pos(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _position_of_index(text: str, index: int) -> Position:
    before = text[:index]
    return Position(before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1)


def parse(text: str) -> ParsedYaml:
    """Parse one YAML document from ``text``; every problem ends up in ``.problems``."""
    result = ParsedYaml()
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        if not loader.check_node():
            return result
        root = loader.get_node()
        result.empty = False
        if loader.check_node():
            second = loader.get_node()
            result.problems.append(YamlProblem(
                _pos(second), "a cron file holds one YAML document; found a second one"))
            return result
        builder = _Builder(loader, result)
        try:
            result.value = builder.build(root, (), 0, False)
        except _TooBig as error:  # point at the top-level entry that expands
            where = result.position(error.path[:1], key=True) if error.path else _pos(root)
            result.problems.append(YamlProblem(where, str(error), error.path[:1]))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        message = " ".join(part for part in (error.context, error.problem) if part)
        result.problems.append(YamlProblem(where, f"invalid YAML: {message}"))
        result.empty = False
    except yaml.reader.ReaderError as error:
        result.problems.append(YamlProblem(
            _position_of_index(text, error.position),
            f"invalid YAML: unacceptable character #x{error.character:04x}"
            if isinstance(error.character, int) else f"invalid YAML: {error.reason}"))
        result.empty = False
    except yaml.YAMLError as error:
        result.problems.append(YamlProblem(Position(1, 1), f"invalid YAML: {error}"))
        result.empty = False
    except RecursionError:
        result.problems.append(YamlProblem(Position(1, 1), "YAML is nested too deeply"))
        result.empty = False
    finally:
        if loader is not None:
            loader.dispose()
    return result


class _Builder:
    """Turns composed nodes into plain values, counting nodes as aliases expand."""

    def __init__(self, loader: yaml.SafeLoader, result: ParsedYaml) -> None:
        self.loader = loader
        self.result = result
        self.count = 0
        self.seen: set[int] = set()  # node ids met once; meeting one again means an alias

    def build(self, node: Node, path: Path, depth: int, via_alias: bool) -> object:
        self.count += 1
        via_alias = via_alias or (id(node) in self.seen and not isinstance(node, ScalarNode))
        self.seen.add(id(node))
        if self.count > MAX_NODES:
            raise _TooBig(path, f"YAML aliases expand beyond {MAX_NODES} nodes" if via_alias
                          else f"YAML document has more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise _TooBig(path, f"YAML nested deeper than {MAX_DEPTH} levels")
        self.result.values.setdefault(path, _pos(node))
        if isinstance(node, MappingNode):
            if node.tag != MAP_TAG:
                self._problem(node, path, f"unsupported YAML tag {node.tag!r} on a mapping")
            return self._mapping(node, path, depth, via_alias)
        if isinstance(node, SequenceNode):
            if node.tag != SEQ_TAG:
                self._problem(node, path, f"unsupported YAML tag {node.tag!r} on a list")
            return [self.build(item, (*path, index), depth + 1, via_alias)
                    for index, item in enumerate(node.value)]
        try:
            value = self.loader.construct_object(node, deep=True)
            if node.tag == INT_TAG and not DECIMAL.match(node.value):
                self._problem(node, path, f"'{node.value}' is not a plain decimal number "
                              f"(YAML 1.1 reads it as {value}); write it in decimal or quote it")
            return value
        except yaml.constructor.ConstructorError as error:
            self._problem(node, path, f"invalid YAML value: {error.problem}")
        except (ValueError, OverflowError, TypeError) as error:  # e.g. 2024-02-30, !!int 0xZZ
            self._problem(node, path, f"invalid YAML value {node.value!r}: {error}")
        return None

    def _mapping(self, node: MappingNode, path: Path, depth: int, via_alias: bool,
                 merging: bool = False) -> dict:
        value: dict[str, object] = {}
        merges = [entry for entry in node.value if entry[0].tag == MERGE_TAG]
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "a mapping key must be a plain value, not a "
                              + ("list" if isinstance(key_node, SequenceNode) else "mapping"))
                continue
            key = key_node.value
            child = (*path, key)
            if key in value:
                first = self.result.keys[child]
                self._problem(key_node, child,
                              f"duplicate key '{key}' (first given on line {first.line})")
                continue
            if merging:
                self.result.keys.setdefault(child, _pos(key_node))
            else:
                self.result.keys[child] = _pos(key_node)
            self.result.values.setdefault(child, _pos(value_node))
            value[key] = self.build(value_node, child, depth + 1, via_alias)
        for _, source in merges:  # explicit keys win over merged ones
            for key, item in self._merged(source, path, depth).items():
                value.setdefault(key, item)
        return value

    def _merged(self, node: Node, path: Path, depth: int) -> dict:
        merged: dict[str, object] = {}
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            self.count += 1
            if self.count > MAX_NODES:
                raise _TooBig(path, f"YAML aliases expand beyond {MAX_NODES} nodes")
            if not isinstance(source, MappingNode):
                self._problem(source, path, "'<<' merges mappings only")
                continue
            for key, item in self._mapping(source, path, depth + 1, True, True).items():
                merged.setdefault(key, item)
        return merged

    def _problem(self, node: Node, path: Path, message: str) -> None:
        problem = YamlProblem(_pos(node), message, path)
        if problem not in self.result.problems:  # an aliased node is met more than once
            self.result.problems.append(problem)

"""Reading YAML process definitions while remembering where each value came from.

Every problem is reported as a `Problem` with a line and column, so lint,
the worker and `orderops start` all print `file:line:col: message`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orderops.process.model import KPI_NODE_TYPES, NODE_TYPES, ProcessDefinition
from orderops.promise import PromisePolicy

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line}:{self.column}: {self.message}"


# YAML also ends a line at NEL, LS, PS and a lone CR; an editor, like the people reading the message,
# only at LF. Positions are given as an editor shows them.
_YAML_ONLY_BREAK = re.compile("\r(?!\n)|[\x85\u2028\u2029]")
_YAML_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _editor_lines(text: str) -> list[tuple[int, int]] | None:
    """For each line YAML counts: the editor's line it begins on and its column offset there; None when
    the two count alike (nearly always)."""
    if not _YAML_ONLY_BREAK.search(text):
        return None
    starts, line, offset, begin = [], 1, 0, 0
    for found in _YAML_BREAK.finditer(text):
        starts.append((line, offset))
        line, offset = (line + 1, 0) if found.group().endswith("\n") else (line, offset + found.end() - begin)
        begin = found.end()
    starts.append((line, offset))
    return starts


@dataclass
class Source:
    """A definition's text, its plain data, and the position of every value in it."""

    text: str
    data: Any = None
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    # Values YAML could not read (reported, then read as null): the models' complaints about them are noise.
    unreadable: set[Path_] = field(default_factory=set)
    _lines: list[tuple[int, int]] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._lines = _editor_lines(self.text)

    def at(self, mark: yaml.Mark) -> tuple[int, int]:
        """A YAML mark as line and column, both from 1, as an editor counts them."""
        if self._lines is None:
            return mark.line + 1, mark.column + 1
        line, offset = self._lines[mark.line]
        return line, offset + mark.column + 1

    def position(self, path: Path_) -> tuple[int, int]:
        """The position of the deepest part of `path` that exists in the file."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.marks:
                return self.marks[path[:end]]
        return (1, 1)

    def problem(self, path: Path_, message: str) -> Problem:
        line, column = self.position(path)
        return Problem(line, column, message)


class DefinitionSnapshot(BaseModel):
    """What an order runs under: recorded in the workflow input, hence in history."""

    id: str
    version: int
    sha256: str
    path: str
    source: str
    # The promise policy, resolved (a file the definition names is read at start): None without one.
    promise_policy: dict[str, Any] | None = None
    promise_policy_sha256: str | None = None


class _Unreadable(Exception):
    def __init__(self, node: yaml.Node, message: str):
        super().__init__(message)
        self.node, self.message = node, message


_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(node: yaml.Node, constructor: yaml.constructor.SafeConstructor) -> Any:
    if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value  # most of a definition; the constructor would return the same string, slower
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as err:
        raise _Unreadable(node, f"cannot read value {node.value!r}: {getattr(err, 'problem', None) or err}") from None


class _Builder:
    """Plain data from a composed document, marking every value's position. A value it cannot read,
    a key that is not a plain name or a duplicated key is a problem, and the rest is read on."""

    def __init__(self, source: Source):
        self.source = source
        self.constructor = yaml.constructor.SafeConstructor()
        self.problems: list[Problem] = []
        self.values = 0
        self.built: set[int] = set()

    def build(self, node: yaml.Node, path: Path_, alias: Path_ | None = None) -> Any:
        """`alias`: the path of the outermost alias being expanded, if any."""
        marks = self.source.marks
        if alias is None and id(node) in self.built:
            alias = path
        self.built.add(id(node))
        if isinstance(node, yaml.CollectionNode) and len(path) >= MAX_DEPTH:
            raise _TooLarge(self.source.at(node.start_mark), _TOO_DEEP)
        self.values += 1
        if self.values > MAX_VALUES:  # only aliases get here: the text itself was counted before
            raise _TooLarge(marks[alias[:-1]] if alias else self.source.at(node.start_mark), _TOO_MANY_VALUES)
        marks.setdefault(path, self.source.at(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                try:
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise _Unreadable(key_node, "a mapping key must be a plain name")
                    key = _scalar(key_node, self.constructor)
                    if key in result:
                        first = marks[(*path, key)][0]
                        raise _Unreadable(key_node, f"duplicate key {key!r} (first given on line {first})")
                except _Unreadable as err:
                    self._unreadable(err)  # the entry is left out; a duplicate keeps the first value
                    continue
                marks[(*path, key)] = self.source.at(key_node.start_mark)
                result[key] = self.build(value_node, (*path, key), alias)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), alias) for i, item in enumerate(node.value)]
        try:
            return _scalar(node, self.constructor)
        except _Unreadable as err:
            self._unreadable(err)
            self.source.unreadable.add(path)
            return None

    def _unreadable(self, err: _Unreadable) -> None:
        self.problems.append(Problem(*self.source.at(err.node.start_mark), err.message))


# Caps that keep a hostile definition from taking the worker or the machine: a billion-laughs file
# (aliases of aliases) expands to gigabytes, a deep one overflows the parser's recursion, a huge one
# takes seconds. Each is a one-line problem at the place it is passed, found by a streaming pass
# over the text before anything is composed. The largest shipped definition holds 21 KB, 1,500
# values and 9 levels (docs/limits.md).
MAX_DEFINITION_CHARACTERS = 1_048_576
MAX_VALUES = 20_000  # every scalar, mapping and sequence, an alias counting as everything it repeats
MAX_DEPTH = 64
# How deep each reader composes without overflowing its stack: libyaml recurses in C (safe to
# 10,000 levels, in a thread, on this machine), PyYAML in Python (three frames a level).
_SAFE_COMPOSE_DEPTH = {True: 500, False: MAX_DEPTH}

# libyaml composes ten times faster than PyYAML, which matters to the workflow (it parses its
# definition at every instantiation); only text PyYAML would read too (no character PyYAML refuses)
# goes to it, so both give the same tree. Anything libyaml cannot read is read again by PyYAML,
# for its messages.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
_OPENING = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSING = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_VALUE = (yaml.ScalarEvent, yaml.AliasEvent, *_OPENING)


class _TooLarge(Exception):
    def __init__(self, position: tuple[int, int], message: str):
        super().__init__(message)
        self.position, self.message = position, message


_TOO_DEEP = f"the YAML is nested more than {MAX_DEPTH} levels deep"
_TOO_MANY_VALUES = f"the definition holds more than {MAX_VALUES:,} values (an alias counts as all it repeats)"


def _depth_bound(text: str) -> int:
    """An upper bound of the nesting depth, without parsing: a flow level opens a bracket, and a
    block level either indents further (at least one column per two levels) or follows an
    indicator (`-`, `?`, `:`) on its line. Overcounting only costs a streaming pass."""
    block = max(((len(line) - len(line.lstrip(" "))) + sum(line.count(c) for c in "-?:") for line in text.splitlines()), default=0)
    return text.count("[") + text.count("{") + 2 * block + 2


def _value_bound(text: str) -> int:
    """An upper bound of the values (aliases not expanded), without parsing: each value after the
    first is set apart by a line break or an indicator, and may open a collection."""
    return 2 * sum(text.count(c) for c in "\n:-,?[{") + 2


def _check_size(source: Source, loader: Any) -> None:
    """Raise _TooLarge where the text passes MAX_DEPTH or MAX_VALUES (aliases not expanded yet)."""
    text = source.text
    # Deeper documents than MAX_DEPTH but shallower than _SAFE_COMPOSE_DEPTH are composed, and the
    # builder stops at the same place.
    if _value_bound(text) <= MAX_VALUES and _depth_bound(text) <= _SAFE_COMPOSE_DEPTH[loader is _FAST_LOADER]:
        return  # what nearly every definition gets: no second pass over the text
    depth = values = 0
    try:
        for event in yaml.parse(text, Loader=loader):  # events come one by one, without recursion
            if isinstance(event, _VALUE):
                values += 1
                if values > MAX_VALUES:
                    raise _TooLarge(source.at(event.start_mark), _TOO_MANY_VALUES)
            if isinstance(event, _OPENING):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _TooLarge(source.at(event.start_mark), _TOO_DEEP)
            elif isinstance(event, _CLOSING):
                depth -= 1
    except yaml.YAMLError:
        return  # composing stops at the same place, after fewer values than the caps, with its message


def _compose(source: Source) -> yaml.Node | None:
    text = source.text
    fast = _FAST_LOADER is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text)
    _check_size(source, _FAST_LOADER if fast else yaml.SafeLoader)
    if fast:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _syntax_error(err: yaml.MarkedYAMLError, source: Source) -> Problem:
    """Where the parser noticed, and where the construct it was reading began (an unclosed quote or bracket)."""
    mark = err.problem_mark or err.context_mark
    where = source.at(mark) if mark else (1, 1)
    message = err.problem or err.context
    opened = err.context_mark
    if err.problem and err.context and opened and (opened.line, opened.column) != (mark.line, mark.column):
        line, column = source.at(opened)
        message += f" ({err.context} started at line {line}, column {column})"
    return Problem(*where, f"YAML syntax error: {message}")


def parse_yaml(text: str) -> tuple[Source, list[Problem]]:
    """The data and positions of a YAML text, or its problems. After a syntax error `data` is None;
    after a value that cannot be read (or a bad or duplicated key) it holds the rest of the document."""
    source = Source(text)
    if len(text) > MAX_DEFINITION_CHARACTERS:
        return source, [Problem(1, 1, f"the definition is longer than {MAX_DEFINITION_CHARACTERS:,} characters, the most that is read")]
    try:
        root = _compose(source)
        if root is None:
            return source, [Problem(1, 1, "the file is empty: a process definition needs id, version, start and nodes")]
        builder = _Builder(source)
        data = builder.build(root, ())
    except _TooLarge as err:
        source.marks.clear()
        return source, [Problem(*err.position, err.message)]
    except yaml.MarkedYAMLError as err:
        return source, [_syntax_error(err, source)]
    except yaml.YAMLError as err:  # e.g. a control character: a ReaderError, which has no marks
        position = getattr(err, "position", None)
        line = text.count("\n", 0, position) + 1 if position is not None else 1
        return source, [Problem(line, 1, f"YAML syntax error: {str(err).splitlines()[0]}")]
    source.data = data
    return source, builder.problems


def _node_label(source: Source, loc: Path_) -> str:
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = source.data.get("nodes") if isinstance(source.data, dict) else None
        if isinstance(nodes, list) and loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
            return f"node {nodes[loc[1]].get('id', '#' + str(loc[1] + 1))!r}: "
    return ""


def _holds(data: Any, part: str | int) -> bool:
    """Whether `data[part]` is there: a key of a mapping, or an index of a list."""
    return (isinstance(data, dict) and part in data) or (isinstance(data, list) and isinstance(part, int) and part < len(data))


def _data_path(loc: Path_, data: Any) -> Path_:
    """Drop the discriminator tags pydantic inserts into locations (nodes.3.task.next)."""
    path: list[str | int] = []
    for part in loc:
        if _holds(data, part):
            data = data[part]
            path.append(part)
        elif isinstance(part, str) and part in NODE_TYPES:
            continue
        else:
            path.append(part)
            data = None
    return tuple(path)


def _kpi_misplaced(path: Path_, data: Any) -> str | None:
    """A `kpi:` on a construct that cannot carry it, or an unknown one, said as such (not as pydantic's type error)."""
    if len(path) != 3 or path[0] != "nodes" or path[2] != "kpi" or not isinstance(data, dict):
        return None
    nodes = data.get("nodes")
    node = nodes[path[1]] if isinstance(nodes, list) and isinstance(path[1], int) and path[1] < len(nodes) else None
    if not isinstance(node, dict) or node.get("type") not in NODE_TYPES:
        return None
    value, kind = node.get("kpi"), node["type"]
    if not isinstance(value, str) or value not in KPI_NODE_TYPES:
        return f"kpi {value!r} is not one of: {', '.join(f'{k} (on a {t})' for k, t in KPI_NODE_TYPES.items())}"
    return f"kpi {value!r} goes on a {KPI_NODE_TYPES[value]}, not on {'an' if kind in ('end', 'exclusive') else 'a'} {kind}"


def _describe(error: ErrorDetails, field_name: str) -> str:
    kind = error["type"]
    if kind == "no_target":
        return f"outcome {field_name!r} has no target"
    if kind == "missing":
        return f"missing required field {field_name!r}"
    if kind == "extra_forbidden":
        return f"unknown field {field_name!r}"
    if kind == "union_tag_invalid":
        found = error.get("ctx", {}).get("tag")
        return f"unknown construct type {found!r} (expected one of: {', '.join(NODE_TYPES)})"
    if kind == "union_tag_not_found":
        return f"missing field 'type' (one of: {', '.join(NODE_TYPES)})"
    message = error["msg"].removeprefix("Value error, ")
    return f"{field_name}: {message}" if field_name else message


# Names pydantic puts in error locations for the members of a union (`PromisePolicy | str`).
_UNION_MEMBER = re.compile(r"^(function-\w+\[.*\]|str|PromisePolicy|int|float|bool)$")


def _field_name(path: Path_) -> str:
    """The field an error is about: the last name in its path (an item of a list counts as the list);
    none for a node's own rule (`status` with `keep_status`), which the node label already names."""
    if len(path) == 2 and path[0] == "nodes":
        return ""
    names = [part for part in path if isinstance(part, str)]
    return names[-1] if names else ""


def problems_of(err: ValidationError, source: Source) -> list[Problem]:
    """pydantic's errors, each at the line and column of the value it is about."""
    problems = []
    errors = err.errors()
    # A mapping given where a union also allows a string: the string member's complaint is noise.
    errors = [e for e in errors if not (e["type"] == "string_type" and isinstance(e.get("input"), dict))] or errors
    for error in errors:
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _UNION_MEMBER.match(p) and p not in NODE_TYPES))
        path = _data_path(loc, source.data)
        if any(path[: len(bad)] == bad for bad in source.unreadable):
            continue  # already reported as a value YAML cannot read
        field_name = _field_name(path)
        if error["type"] == "union_tag_invalid":
            path += ("type",)  # point at the offending `type:` line, not the node's first
        if error["type"] == "missing" and len(path) == 3 and path[0] == "nodes" and path[2] == "default":
            message = "exclusive gateway has no 'default' branch"  # the one node with a required `default`
        else:
            message = _kpi_misplaced(path, source.data) or _describe(error, field_name)
        problems.append(source.problem(path, _node_label(source, path) + message))
    return problems


def validate(source: Source) -> tuple[ProcessDefinition | None, list[Problem]]:
    if not isinstance(source.data, dict):
        return None, [Problem(1, 1, "a process definition must be a mapping with id, version, start and nodes")]
    try:
        return ProcessDefinition.model_validate(source.data), []
    except ValidationError as err:
        return None, problems_of(err, source)


def load_text(text: str) -> tuple[ProcessDefinition | None, Source, list[Problem]]:
    """Parse and validate (structure only; see `lint` for the graph and expression checks)."""
    source, problems = parse_yaml(text)
    if problems:
        return None, source, problems
    definition, problems = validate(source)
    return definition, source, problems


def snapshot(path: Path, text: str, definition: ProcessDefinition, policy: PromisePolicy | None = None) -> DefinitionSnapshot:
    return DefinitionSnapshot(
        id=definition.id,
        version=definition.version,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        path=str(path),
        source=text,
        promise_policy=policy.model_dump(mode="json") if policy else None,
        # Of the resolved policy, so an inline one and a file with the same content hash alike.
        promise_policy_sha256=hashlib.sha256(policy.model_dump_json().encode()).hexdigest() if policy else None,
    )

"""Guarded YAML reading: plain data with positions, no aliases, no tags, bounded nesting.

``yaml.SafeLoader`` already refuses to build Python objects; on top of it this
loader rejects aliases (so an anchor bomb cannot expand), limits nesting (so a
deeply nested file cannot exhaust the stack), rejects explicit or exotic tags
(timestamps, binary, ``!!python/...``) and duplicate keys, and keeps each
value's line and column so every later error can point into the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import ComposerError

MAX_YAML_DEPTH = 20

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}


class YamlProblem(Exception):
    """One YAML problem at ``line``/``column`` (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class Y:
    """A YAML value with its position: scalar (Python value), map (dict of Y) or seq (list of Y)."""

    kind: str  # "scalar" | "map" | "seq"
    value: Any
    line: int
    column: int
    style: str | None = None  # scalar style: None (plain), "'", '"', "|", ">"
    keys: dict[str, Y] = field(default_factory=dict)  # map: key nodes, for positions


class _GuardedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ComposerError(
                None, None, "YAML aliases (*name) are not allowed in rule files", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise ComposerError(
                    None,
                    None,
                    f"YAML is nested too deeply (more than {MAX_YAML_DEPTH} levels)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str, problems: list[YamlProblem] | None = None) -> Y | None:
    """Parse one YAML document into positioned values; None for an empty document.

    Raises ``YamlProblem`` for what stops parsing; duplicate keys are appended to
    ``problems`` (when given) and the first value kept, so later checks still run.

    >>> load_yaml("a: [1, x]").value["a"].value[1].value
    'x'
    """
    found = problems if problems is not None else []
    try:
        loader = _GuardedLoader(text)
    except yaml.reader.ReaderError as e:  # a control character: the reader refuses the text
        pos = max(0, min(len(text), e.position))
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        char = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or " ")
        raise YamlProblem(f"YAML: character #x{char:04x} is not allowed", line, col) from None
    try:
        node = loader.get_single_node()
        return None if node is None else _convert(loader, node, found)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = e.problem or e.context or "invalid YAML"
        if e.context and e.problem:
            msg = f"{e.context}: {e.problem}"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlProblem(f"YAML: {msg}", line, col) from None
    except yaml.YAMLError as e:
        raise YamlProblem(f"YAML: {e}", 1, 1) from None
    except RecursionError:
        raise YamlProblem("YAML is nested too deeply", 1, 1) from None
    finally:
        loader.dispose()


def _convert(loader: _GuardedLoader, node: yaml.Node, problems: list[YamlProblem]) -> Y:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in _SCALAR_TAGS:
            raise YamlProblem(
                f"YAML tag '{node.tag.removeprefix(_TAG)}' is not allowed; "
                "use plain strings, numbers, booleans, lists and maps",
                line,
                col,
            )
        return Y("scalar", loader.construct_object(node), line, col, node.style)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _TAG + "seq":
            raise YamlProblem(f"YAML tag '{node.tag}' is not allowed", line, col)
        return Y("seq", [_convert(loader, n, problems) for n in node.value], line, col)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _TAG + "map":
            raise YamlProblem(f"YAML tag '{node.tag}' is not allowed", line, col)
        values: dict[str, Y] = {}
        keys: dict[str, Y] = {}
        for knode, vnode in node.value:
            key = _convert(loader, knode, problems)
            if key.kind != "scalar" or not isinstance(key.value, str) or knode.tag != _TAG + "str":
                raise YamlProblem(
                    "mapping keys must be plain strings"
                    + ("; '<<' merge keys are not allowed" if knode.tag == _TAG + "merge" else ""),
                    key.line,
                    key.column,
                )
            if key.value in values:
                first = keys[key.value]
                problems.append(
                    YamlProblem(
                        f"duplicate key '{key.value}' (first at line {first.line})",
                        key.line,
                        key.column,
                    )
                )
                continue
            keys[key.value] = key
            values[key.value] = _convert(loader, vnode, problems)
        return Y("map", values, line, col, keys=keys)
    raise YamlProblem("unsupported YAML node", line, col)

"""Read a rule directory, check everything, report every problem with its place.

Layout: ``DIR/*.yaml`` rule files, each a map with optional ``lists`` and
``rules``; list files referenced by relative path (one value per line); rule
test cases in ``DIR/tests/*.yaml`` (see ``testing.py``). The rule set's version
is a hash of the rule files' and list files' contents and relative paths only,
so it is the same on every machine and never depends on file times.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudflow.operators.features.catalogue import FeatureSpec
from fraudflow.rules.errors import Diagnostic, RuleError
from fraudflow.rules.expr import (
    CONSTANTS,
    FUNCTIONS,
    NUMBER,
    PY_TYPES,
    STRING,
    Expr,
    ExprError,
    ListDef,
    parse_expr,
)
from fraudflow.rules.ruleset import SEVERITIES, TIERS, Rule, RuleSet
from fraudflow.rules.yamlsafe import Y, YamlProblem, load_yaml

# limits, checked before anything is parsed
MAX_RULE_FILE_BYTES = 256 * 1024
MAX_LIST_FILE_BYTES = 8 * 1024 * 1024
MAX_LIST_VALUES = 200_000
MAX_FILES = 500
MAX_RULES = 5_000
MAX_ERRORS_PER_LIST_FILE = 20
MAX_TOTAL_BYTES = 256 * 1024 * 1024  # rule and list files together, per load
MAX_LOAD_SECONDS = 300.0  # a load that takes longer is abandoned (the last good rules stay)

RULE_FIELDS = (
    "id",
    "description",
    "when",
    "score",
    "tier",
    "severity",
    "enabled",
    "tags",
    "owner",
    "scope",
    "must_review",
)
TOP_FIELDS = ("lists", "rules")
LIST_FIELDS = ("values", "file", "type")
_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,79}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


def feature_types(catalogue: Mapping[str, FeatureSpec]) -> dict[str, str]:
    """Catalogue -> language types (int and float are both ``number``)."""
    return {name: PY_TYPES[spec.type] for name, spec in catalogue.items()}


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory, in name order: every ``*.yaml`` entry that is not a
    directory (a symlink out, a FIFO or a device is listed, then refused by ``read_entry``
    with a message, rather than silently skipped)."""
    return sorted(p for p in directory.glob("*.yaml") if not p.is_dir())


def digest(entries: Mapping[str, bytes]) -> str:
    """Version hash of (relative path -> content) entries: 12 hex digits."""
    h = hashlib.blake2b(digest_size=6)
    for rel in sorted(entries):
        data = entries[rel]
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def read_entry(path: Path, limit: int, root: Path | None = None) -> bytes:
    """File content for hashing and parsing; a marker (starting with NUL) when missing,
    over ``limit``, not a regular file, or (with ``root``) resolving outside ``root``.

    Nothing here can block: the file is opened with ``O_NONBLOCK | O_NOFOLLOW`` after
    its symlinks are resolved, and anything but a regular file (a FIFO, a device, a
    socket) is refused from ``fstat`` before a byte is read.
    """
    try:
        real = path.resolve(strict=True)
        if root is not None and not real.is_relative_to(root.resolve()):
            return b"\0outside"
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        fd = os.open(real, flags)
    except OSError as e:
        return f"\0unreadable:{type(e).__name__}".encode()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b"\0not regular"
        if st.st_size > limit:
            return f"\0too large:{st.st_size}".encode()
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        return f"\0too large:{len(data)}".encode() if len(data) > limit else data
    except OSError as e:
        return f"\0unreadable:{type(e).__name__}".encode()
    finally:
        os.close(fd)


def refusal(data: bytes, limit: int) -> str | None:
    """Why ``read_entry`` refused a file (``None`` when it returned content)."""
    if not data.startswith(b"\0"):
        return None
    if data.startswith(b"\0too large"):
        return f"larger than {limit} bytes"
    if data == b"\0outside":
        return "a symlink to a file outside the rule directory"
    if data == b"\0not regular":
        return "not a regular file (a FIFO, device or socket)"
    return "missing or unreadable"


def stat_signature(directory: Path, list_files: Iterable[str]) -> tuple[object, ...]:
    """A cheap change check (names, inodes, sizes, mtimes; no content read): the watcher
    reads and hashes the files only when this changes."""
    out: list[object] = []
    for p in [*rule_files(directory)[: MAX_FILES + 1], *(directory / r for r in list_files)]:
        try:
            st = p.stat()
            out.append((str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode))
        except OSError as e:
            out.append((str(p), type(e).__name__))
    return tuple(out)


def fingerprint(directory: Path, list_files: Iterable[str]) -> str:
    """The version the directory would have now, given the list files last referenced."""
    entries = {
        p.name: read_entry(p, MAX_RULE_FILE_BYTES, directory)
        for p in rule_files(directory)[:MAX_FILES]
    }
    for rel in list_files:
        entries[rel] = read_entry(directory / rel, MAX_LIST_FILE_BYTES, directory)
    return digest(entries)


@dataclass
class LoadResult:
    """What one load attempt found: the rule set (None on error), problems, version, list files."""

    ruleset: RuleSet | None
    diagnostics: list[Diagnostic]
    version: str
    list_files: tuple[str, ...]


@dataclass
class _Ctx:
    directory: Path
    features: dict[str, str]
    diags: list[Diagnostic] = field(default_factory=list)
    entries: dict[str, bytes] = field(default_factory=dict)
    list_files: dict[str, None] = field(default_factory=dict)
    lists: dict[str, ListDef] = field(default_factory=dict)
    list_pos: dict[str, str] = field(default_factory=dict)
    rule_pos: dict[str, str] = field(default_factory=dict)

    read_bytes: int = 0
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_LOAD_SECONDS)
    stopped: bool = False

    def error(self, file: str, line: int, column: int, message: str) -> None:
        self.diags.append(Diagnostic(file, line, column, message))

    def over_budget(self, shown: str) -> bool:
        """Past the total size or time limit of one load: say so once, then stop."""
        if self.stopped:
            return True
        if self.read_bytes > MAX_TOTAL_BYTES:
            why = f"rule and list files exceed {MAX_TOTAL_BYTES} bytes in total"
        elif time.monotonic() > self.deadline:
            why = f"loading took longer than {MAX_LOAD_SECONDS:g} s"
        else:
            return False
        self.stopped = True
        self.error(str(self.directory), 0, 0, f"{why}; stopped at {shown}")
        return True


def load_rules(directory: Path, catalogue: Mapping[str, FeatureSpec]) -> RuleSet:
    """Load and check every rule file in ``directory``; raise ``RuleError`` with all problems."""
    result = load_directory(directory, catalogue)
    if result.ruleset is None:
        raise RuleError(result.diagnostics)
    return result.ruleset


def load_directory(directory: Path, catalogue: Mapping[str, FeatureSpec]) -> LoadResult:
    """One load attempt that never raises for bad content: see ``LoadResult``."""
    directory = Path(directory)
    ctx = _Ctx(directory, feature_types(catalogue))
    if not directory.is_dir():
        ctx.error(str(directory), 0, 0, "rule directory does not exist or is not a directory")
        return LoadResult(None, ctx.diags, digest({}), ())
    files = rule_files(directory)
    if not files:
        ctx.error(str(directory), 0, 0, "no rule files (*.yaml) in the rule directory")
    if len(files) > MAX_FILES:
        ctx.error(str(directory), 0, 0, f"{len(files)} rule files; the limit is {MAX_FILES}")
        files = files[:MAX_FILES]
    docs: list[tuple[str, Path, str, Y]] = []
    for path in files:
        shown = str(path)
        if ctx.over_budget(shown):
            break
        data = read_entry(path, MAX_RULE_FILE_BYTES, directory)
        ctx.entries[path.name] = data
        ctx.read_bytes += len(data)
        if data.startswith(b"\0too large"):
            ctx.error(
                shown,
                0,
                0,
                f"file is {data.split(b':')[1].decode()} bytes; the limit is {MAX_RULE_FILE_BYTES}",
            )
            continue
        if (why := refusal(data, MAX_RULE_FILE_BYTES)) is not None:
            ctx.error(shown, 0, 0, "cannot read file" if "unreadable" in why else why)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            ctx.error(shown, 0, 0, f"file is not UTF-8 (byte {e.start})")
            continue
        problems: list[YamlProblem] = []
        try:
            doc = load_yaml(text, problems)
        except YamlProblem as exc:
            problems.append(exc)
            doc = None
        for p in problems:
            ctx.error(shown, p.line, p.column, p.message)
        if doc is None:
            continue
        if doc.kind != "map":
            ctx.error(
                shown, doc.line, doc.column, "a rule file must be a map with 'rules' and/or 'lists'"
            )
            continue
        for key, knode in doc.keys.items():
            if key not in TOP_FIELDS:
                ctx.error(
                    shown,
                    knode.line,
                    knode.column,
                    f"unknown top-level key '{key}'{_suggest(key, TOP_FIELDS)}",
                )
        docs.append((shown, path, text, doc))
    # lists first (they are global to the directory), then rules
    for shown, path, _text, doc in docs:
        if ctx.over_budget(shown):
            break
        if "lists" in doc.value:
            _lists(ctx, shown, path, doc.value["lists"])
    rules: list[Rule] = []
    for shown, _path, text, doc in docs:
        if "rules" in doc.value:
            rules.extend(_rules(ctx, shown, text.split("\n"), doc.value["rules"]))
    if len(rules) > MAX_RULES:
        ctx.error(str(directory), 0, 0, f"{len(rules)} rules; the limit is {MAX_RULES}")
    version = digest(ctx.entries)
    if ctx.diags:
        return LoadResult(None, sorted(ctx.diags), version, tuple(ctx.list_files))
    return LoadResult(RuleSet(version, rules, ctx.lists), [], version, tuple(ctx.list_files))


def _bool_hint(value: Any) -> str:
    if isinstance(value, bool):
        return " (YAML reads yes/no/on/off/NO as booleans: quote it, e.g. 'NO')"
    return ""


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return (
        f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(options)})"
    )


def _lists(ctx: _Ctx, shown: str, path: Path, node: Y) -> None:
    if node.kind != "map":
        ctx.error(shown, node.line, node.column, "'lists' must be a map of list name -> values")
        return
    for name, spec in node.value.items():
        knode = node.keys[name]
        if not _NAME_RE.fullmatch(name) or name.startswith("__"):
            ctx.error(
                shown,
                knode.line,
                knode.column,
                f"list name '{name}' must be an identifier (letters, digits, _; no leading __)",
            )
            continue
        clash = (
            "a feature"
            if name in ctx.features
            else "a function"
            if name in FUNCTIONS
            else "a constant"
            if name in CONSTANTS
            else None
        )
        if clash:
            ctx.error(shown, knode.line, knode.column, f"list name '{name}' is already {clash}")
            continue
        if name in ctx.list_pos:
            ctx.error(
                shown,
                knode.line,
                knode.column,
                f"duplicate list '{name}' (first defined at {ctx.list_pos[name]})",
            )
            continue
        ctx.list_pos[name] = f"{shown}:{knode.line}"
        # a list that failed keeps an untyped placeholder, so its uses add no errors
        ctx.lists[name] = _list_def(ctx, shown, path, name, spec) or ListDef(
            name, None, frozenset()
        )


def _list_def(ctx: _Ctx, shown: str, path: Path, name: str, spec: Y) -> ListDef | None:
    declared: str | None = None
    if spec.kind == "seq":
        return _values_def(ctx, shown, name, spec.value, declared=None, where=spec)
    if spec.kind != "map":
        ctx.error(
            shown,
            spec.line,
            spec.column,
            f"list '{name}' must be a sequence of values or a map with 'values' or 'file'",
        )
        return None
    for key, knode in spec.keys.items():
        if key not in LIST_FIELDS:
            ctx.error(
                shown,
                knode.line,
                knode.column,
                f"unknown list field '{key}'{_suggest(key, LIST_FIELDS)}",
            )
    if "type" in spec.value:
        t = spec.value["type"]
        if t.value not in ("string", "number"):
            ctx.error(shown, t.line, t.column, "list 'type' must be 'string' or 'number'")
            return None
        declared = STRING if t.value == "string" else NUMBER
    has_values, has_file = "values" in spec.value, "file" in spec.value
    if has_values == has_file:
        ctx.error(
            shown, spec.line, spec.column, f"list '{name}' needs exactly one of 'values' or 'file'"
        )
        return None
    if has_values:
        vnode = spec.value["values"]
        if vnode.kind != "seq":
            ctx.error(
                shown, vnode.line, vnode.column, f"'values' of list '{name}' must be a sequence"
            )
            return None
        return _values_def(ctx, shown, name, vnode.value, declared=declared, where=vnode)
    return _file_list(ctx, shown, path, name, spec.value["file"], declared=declared)


def _values_def(
    ctx: _Ctx, shown: str, name: str, items: list[Y], *, declared: str | None, where: Y
) -> ListDef | None:
    if len(items) > MAX_LIST_VALUES:
        ctx.error(
            shown,
            where.line,
            where.column,
            f"list '{name}' has {len(items)} values; the limit is {MAX_LIST_VALUES}",
        )
        return None
    values: list[Any] = []
    ok = True
    for item in items:
        v = item.value
        if item.kind != "scalar" or v is None or isinstance(v, bool):
            hint = _bool_hint(v)
            ctx.error(
                shown,
                item.line,
                item.column,
                f"list '{name}' values must be strings or numbers{hint}",
            )
            ok = False
            continue
        if isinstance(v, float) and not math.isfinite(v):
            ctx.error(shown, item.line, item.column, f"list '{name}' has a non-finite number")
            ok = False
            continue
        values.append(v)
    if not ok:
        return None
    kinds = {STRING if isinstance(v, str) else NUMBER for v in values}
    if declared is not None:
        kinds.add(declared)
    if len(kinds) > 1:
        ctx.error(
            shown,
            where.line,
            where.column,
            f"list '{name}' mixes strings and numbers"
            + (f" (declared type {declared})" if declared else ""),
        )
        return None
    return ListDef(name, next(iter(kinds), None), frozenset(values))


def _file_list(
    ctx: _Ctx, shown: str, path: Path, name: str, fnode: Y, *, declared: str | None
) -> ListDef | None:
    rel = fnode.value
    if not isinstance(rel, str) or not rel.strip():
        ctx.error(
            shown, fnode.line, fnode.column, f"'file' of list '{name}' must be a relative path"
        )
        return None
    if Path(rel).is_absolute() or "\\" in rel:
        ctx.error(
            shown, fnode.line, fnode.column, f"list file '{rel}' must be a relative path (with /)"
        )
        return None
    root = ctx.directory.resolve()
    target = (path.parent / rel).resolve()
    if not target.is_relative_to(root):
        ctx.error(
            shown, fnode.line, fnode.column, f"list file '{rel}' is outside the rule directory"
        )
        return None
    key = target.relative_to(root).as_posix()
    ctx.list_files[key] = None
    if ctx.over_budget(shown):
        return None
    data = read_entry(target, MAX_LIST_FILE_BYTES, root)
    ctx.entries[key] = data
    ctx.read_bytes += len(data)
    if (why := refusal(data, MAX_LIST_FILE_BYTES)) is not None:
        ctx.error(shown, fnode.line, fnode.column, f"list file '{rel}' is {why}")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        ctx.error(
            shown, fnode.line, fnode.column, f"list file '{rel}' is not UTF-8 (byte {e.start})"
        )
        return None
    lines = text.splitlines()
    entries = [
        (i, s) for i, raw in enumerate(lines, 1) if (s := raw.strip()) and not s.startswith("#")
    ]
    if len(entries) > MAX_LIST_VALUES:
        ctx.error(
            shown,
            fnode.line,
            fnode.column,
            f"list file '{rel}' has {len(entries)} values; the limit is {MAX_LIST_VALUES}",
        )
        return None
    shown_list = str(ctx.directory / key)
    if declared != NUMBER:
        return ListDef(name, STRING if entries else declared, frozenset(s for _, s in entries))
    values: list[float | int] = []
    bad = 0
    for i, s in entries:
        try:
            v: float | int = int(s) if re.fullmatch(r"[+-]?\d{1,30}", s) else float(s)
            if not math.isfinite(v):
                raise ValueError(s)
            values.append(v)
        except ValueError:
            bad += 1
            if bad <= MAX_ERRORS_PER_LIST_FILE:
                ctx.error(
                    shown_list, i, 1, f"list '{name}' has type number but this line is not a number"
                )
    if bad > MAX_ERRORS_PER_LIST_FILE:
        ctx.error(
            shown_list,
            0,
            0,
            f"... and {bad - MAX_ERRORS_PER_LIST_FILE} more lines that are not numbers",
        )
    return None if bad else ListDef(name, NUMBER, frozenset(values))


def _rules(ctx: _Ctx, shown: str, lines: list[str], node: Y) -> list[Rule]:
    if node.kind != "seq":
        ctx.error(
            shown,
            node.line,
            node.column,
            "'rules' must be a sequence of rules (each starting with '- id:')",
        )
        return []
    out = []
    for item in node.value:
        rule = _rule(ctx, shown, lines, item)
        if rule is not None:
            out.append(rule)
    return out


def _rule(ctx: _Ctx, shown: str, lines: list[str], node: Y) -> Rule | None:
    if node.kind != "map":
        ctx.error(
            shown, node.line, node.column, "each rule must be a map with id, description, when, ..."
        )
        return None
    before = len(ctx.diags)
    f = node.value
    for key, knode in node.keys.items():
        if key not in RULE_FIELDS:
            ctx.error(
                shown,
                knode.line,
                knode.column,
                f"unknown rule field '{key}'{_suggest(key, RULE_FIELDS)}",
            )
    for key in ("id", "description", "when"):
        if key not in f:
            ctx.error(shown, node.line, node.column, f"rule is missing '{key}'")

    def text(key: str, default: str | None = None) -> str | None:
        y = f.get(key)
        if y is None:
            return default
        if y.kind != "scalar" or not isinstance(y.value, str):
            ctx.error(shown, y.line, y.column, f"'{key}' must be a string{_bool_hint(y.value)}")
            return None
        return y.value

    def flag(key: str, default: bool) -> bool:
        y = f.get(key)
        if y is None:
            return default
        if not isinstance(y.value, bool):
            ctx.error(shown, y.line, y.column, f"'{key}' must be true or false")
            return default
        return y.value

    rid = text("id")
    if rid is not None:
        idnode = f["id"]
        if not _ID_RE.fullmatch(rid):
            ctx.error(
                shown,
                idnode.line,
                idnode.column,
                f"rule id '{rid[:80]}' must start with a letter and use letters, digits, _ . -"
                " (at most 80)",
            )
        elif rid in ctx.rule_pos:
            ctx.error(
                shown,
                idnode.line,
                idnode.column,
                f"duplicate rule id '{rid}' (first defined at {ctx.rule_pos[rid]})",
            )
        else:
            ctx.rule_pos[rid] = f"{shown}:{idnode.line}"
    description = text("description")
    if description is not None and not description.strip():
        ctx.error(shown, f["description"].line, f["description"].column, "'description' is empty")
    owner = text("owner", "")
    tier = text("tier")
    if tier is not None and tier not in TIERS:
        ctx.error(
            shown,
            f["tier"].line,
            f["tier"].column,
            f"'tier' must be one of {', '.join(TIERS)}, got '{tier}'",
        )
    if "tier" in f and f["tier"].value is None:
        tier = None
    severity = text("severity", "medium")
    if severity is not None and severity not in SEVERITIES:
        ctx.error(
            shown,
            f["severity"].line,
            f["severity"].column,
            f"'severity' must be one of {', '.join(SEVERITIES)}, got '{severity}'",
        )
    score = 0.0
    if "score" in f:
        y = f["score"]
        v = y.value
        if y.kind != "scalar" or isinstance(v, bool) or not isinstance(v, int | float):
            ctx.error(shown, y.line, y.column, "'score' must be a number in [0, 1]")
        elif not 0.0 <= v <= 1.0:
            ctx.error(shown, y.line, y.column, f"'score' must be in [0, 1], got {v}")
        else:
            score = float(v)
    elif "tier" not in f:
        ctx.error(
            shown,
            node.line,
            node.column,
            "rule needs a 'score' in [0, 1] and/or a 'tier' (review|block)",
        )
    enabled = flag("enabled", True)
    must_review = flag("must_review", False)
    if must_review and tier is None:
        tier = "review"  # a must-review rule without a tier reviews
    tags: list[str] = []
    if "tags" in f:
        y = f["tags"]
        if y.kind != "seq" or not all(
            t.kind == "scalar" and isinstance(t.value, str) for t in y.value
        ):
            ctx.error(shown, y.line, y.column, "'tags' must be a list of strings")
        else:
            tags = [t.value for t in y.value]
    when = _expr(ctx, shown, lines, f.get("when"), "when")
    scope = _expr(ctx, shown, lines, f.get("scope"), "scope") if "scope" in f else None
    if (
        len(ctx.diags) > before
        or rid is None
        or description is None
        or when is None
        or severity is None
    ):
        return None
    return Rule(
        id=rid,
        description=description,
        when=when.text,
        score=score,
        tier=tier,
        severity=severity,
        enabled=enabled,
        tags=tuple(tags),
        owner=owner or "",
        scope=scope.text if scope else None,
        file=shown,
        line=node.line,
        when_expr=when,
        scope_expr=scope,
        must_review=must_review,
    )


def _expr(ctx: _Ctx, shown: str, lines: list[str], y: Y | None, key: str) -> Expr | None:
    if y is None:
        return None
    if y.kind != "scalar" or not isinstance(y.value, str):
        ctx.error(shown, y.line, y.column, f"'{key}' must be an expression in a string")
        return None
    try:
        return parse_expr(y.value, ctx.features, ctx.lists)
    except ExprError as exc:
        for e in exc.all:
            line, col, msg = expr_position(y, lines, e)
            ctx.error(shown, line, col, f"{key}: {msg}")
        return None


def expr_position(y: Y, lines: list[str], e: ExprError) -> tuple[int, int, str]:
    """File line/column (1-based) of an error inside the expression held by scalar ``y``."""
    text = str(y.value)
    if (
        y.style in (None, "'", '"')
        and "\n" not in text
        and (y.style is not None or y.line <= len(lines))
    ):
        quoted = 1 if y.style in ("'", '"') else 0
        return y.line, y.column + quoted + e.column, e.message
    if y.style == "|":
        # content starts on the line after '|'; its indentation is the first non-blank line's
        body = [s for s in lines[y.line : y.line + text.count("\n") + 1] if s.strip()]
        line = y.line + e.line
        if body and 1 <= line <= len(lines):
            indent = len(body[0]) - len(body[0].lstrip(" "))
            return line, indent + 1 + e.column, e.message
    return y.line, y.column, f"{e.message} (expression line {e.line}, column {e.column + 1})"

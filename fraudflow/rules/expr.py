"""The rule expression language: a small, typed, side-effect-free subset of Python syntax.

A rule's text goes through ``ast.parse`` only to get a syntax tree. That tree is
checked against an allowlist and typed against the feature catalogue, giving
this module's own tree of ``Node`` objects. Those are turned into closures (the
reference evaluator, :func:`to_closure`) and into Python syntax trees built
from scratch (:func:`to_pyast`, used by ``RuleSet`` to compile one batch
function). The rule text itself is never evaluated, and no name written in a
rule reaches generated code: features become locals ``_v0, _v1 ...``, lists
become frozensets ``_s0 ...``, functions come from :data:`FUNCTIONS`.

Allowed: numbers, strings, ``true``/``false``; feature names; list names and
list literals after ``in``/``not in``; ``and``/``or``/``not``; comparisons
(chained too); ``+ - * /`` on numbers; unary minus; the functions in
:data:`FUNCTIONS`. Everything else is rejected with a message and a position.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

# limits that keep checking and evaluation bounded whatever a file contains
MAX_EXPR_CHARS = 2000
MAX_DEPTH = 32
MAX_NODES = 400
MAX_LIST_LITERAL = 1000
# features of the retired in-flow feedback step (with *_fraud_rate_* and *_frauds_*):
# a rule naming one gets a pointer to their successor, the trained model
RETIRED_FEATURES = ("entity_risk", "supervised_score")

# value types of the language
NUMBER = "number"
STRING = "string"
BOOLEAN = "boolean"
LIST_NUMBER = "list of numbers"
LIST_STRING = "list of strings"
LIST_EMPTY = "empty list"
UNKNOWN = "unknown"  # the type of a name that failed to resolve: checks on it are skipped
LIST_TYPES = {LIST_NUMBER: NUMBER, LIST_STRING: STRING, LIST_EMPTY: None}

PY_TYPES: dict[type, str] = {bool: BOOLEAN, int: NUMBER, float: NUMBER, str: STRING}

Row = Mapping[str, Any]
Evaluator = Callable[[Row], Any]


@dataclass(frozen=True)
class Function:
    """An allowlisted function: argument types (``variadic``: one type, at least two args)."""

    args: tuple[str, ...]
    result: str
    impl: Callable[..., Any]
    variadic: bool = False
    doc: str = ""


def _lower(s: str) -> str:
    return s.lower()


def _upper(s: str) -> str:
    return s.upper()


def _startswith(s: str, prefix: str) -> bool:
    return s.startswith(prefix)


def _endswith(s: str, suffix: str) -> bool:
    return s.endswith(suffix)


def _len(s: str) -> int:
    return len(s)


FUNCTIONS: dict[str, Function] = {
    "abs": Function((NUMBER,), NUMBER, abs, doc="absolute value"),
    "min": Function((NUMBER,), NUMBER, min, variadic=True, doc="smallest of two or more numbers"),
    "max": Function((NUMBER,), NUMBER, max, variadic=True, doc="largest of two or more numbers"),
    "lower": Function((STRING,), STRING, _lower, doc="lower-case string"),
    "upper": Function((STRING,), STRING, _upper, doc="upper-case string"),
    "len": Function((STRING,), NUMBER, _len, doc="length of a string"),
    "startswith": Function((STRING, STRING), BOOLEAN, _startswith, doc="startswith(s, prefix)"),
    "endswith": Function((STRING, STRING), BOOLEAN, _endswith, doc="endswith(s, suffix)"),
}

CONSTANTS: dict[str, bool] = {"true": True, "false": False, "True": True, "False": False}


class ExprError(Exception):
    """A problem in one expression; ``line`` 1-based and ``column`` 0-based within its text."""

    def __init__(self, message: str, line: int = 1, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.others: list[ExprError] = []  # further problems found in the same expression

    @property
    def all(self) -> list[ExprError]:
        return [self, *self.others]


# ---------------------------------------------------------------------------
# the checked tree


@dataclass(frozen=True, slots=True)
class Node:
    typ: str


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: bool | int | float | str


@dataclass(frozen=True, slots=True)
class Feature(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Values(Node):
    """A set of values: a named list (``name``) or a list literal (``name`` None)."""

    values: frozenset[Any]
    name: str | None


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    left: Node
    ops: tuple[str, ...]  # == != < <= > >=
    rights: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Member(Node):
    needle: Node
    hay: Node  # Values, or a string-typed node for substring tests
    negate: bool


@dataclass(frozen=True, slots=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class ListDef:
    """A named list usable after ``in``: element type (None when empty) and values."""

    name: str
    elem: str | None
    values: frozenset[Any]

    @property
    def typ(self) -> str:
        return {NUMBER: LIST_NUMBER, STRING: LIST_STRING}.get(self.elem or "", LIST_EMPTY)


@dataclass(frozen=True)
class Expr:
    """A checked expression: source text, typed tree, the feature and list names it uses."""

    text: str
    root: Node
    features: tuple[str, ...]
    lists: tuple[str, ...]

    @cached_property
    def closure(self) -> Evaluator:
        """The reference evaluator (closures); ``RuleSet`` uses generated code instead."""
        return to_closure(self.root)

    def evaluate(self, row: Row) -> Any:
        """Reference evaluation of one row."""
        return self.closure(row)


# ---------------------------------------------------------------------------
# checking

_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
_ARITH_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}
_OP_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Mod: "%",
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access ('.') is not allowed; write lower(x), not x.lower()",
    ast.Subscript: "indexing and slicing ('[...]' after a value) are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.IfExp: "'x if c else y' is not allowed; use and/or",
    ast.NamedExpr: "':=' is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


class _Checker:
    def __init__(
        self, text: str, features: Mapping[str, str], lists: Mapping[str, ListDef]
    ) -> None:
        self.lines = text.split("\n")
        self.features = features
        self.lists = lists
        self.nodes = 0
        self.used_features: dict[str, None] = {}
        self.used_lists: dict[str, None] = {}
        self.errors: list[ExprError] = []

    def soft(self, node: ast.AST, message: str) -> None:
        """Record a name or type problem and go on, so one pass reports them all."""
        self.errors.append(self.error(node, message))

    # positions: the text is parsed as "(\n" + text + "\n)", so line 2 is the text's line 1
    def error(self, node: ast.AST | None, message: str) -> ExprError:
        lineno = getattr(node, "lineno", None)
        offset = getattr(node, "col_offset", None)
        if lineno is None or offset is None:
            return ExprError(message)
        line = max(1, min(len(self.lines), lineno - 1))
        raw = self.lines[line - 1].encode(errors="surrogatepass")
        col = len(raw[:offset].decode(errors="ignore"))
        return ExprError(message, line, col)

    def check(self, node: ast.expr, depth: int) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(node, f"expression is too large (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise self.error(
                node, f"expression is nested too deeply (more than {MAX_DEPTH} levels)"
            )
        d = depth + 1
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            operands = tuple(self.expect(v, d, BOOLEAN, f"'{op}'") for v in node.values)
            return BoolOp(BOOLEAN, op, operands)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, d)
        if isinstance(node, ast.BinOp):
            sym = _ARITH_OPS.get(type(node.op))
            if sym is None:
                raise self.error(
                    node,
                    f"operator '{_OP_SYMBOLS.get(type(node.op), '?')}' is not allowed; "
                    "arithmetic is + - * /",
                )
            left = self.expect(node.left, d, NUMBER, f"'{sym}'")
            right = self.expect(node.right, d, NUMBER, f"'{sym}'")
            if UNKNOWN in (left.typ, right.typ):
                return Node(UNKNOWN)
            return Arith(NUMBER, sym, left, right)
        if isinstance(node, ast.Compare):
            return self.compare(node, d)
        if isinstance(node, ast.Call):
            return self.call(node, d)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self.error(node, "a list can only follow 'in' or 'not in'")
        msg = _FORBIDDEN.get(
            type(node), f"{type(node).__name__} is not allowed in rule expressions"
        )
        raise self.error(node, msg)

    def expect(self, node: ast.expr, depth: int, typ: str, where: str) -> Node:
        out = self.check(node, depth)
        if out.typ not in (typ, UNKNOWN):
            self.soft(node, f"{where} needs a {typ}, got a {out.typ}")
            return Node(UNKNOWN)  # reported: checks that depend on it are skipped
        return out

    def constant(self, node: ast.Constant) -> Node:
        v = node.value
        if isinstance(v, bool):
            return Const(BOOLEAN, v)
        if isinstance(v, int | float):
            if isinstance(v, float) and not math.isfinite(v):
                raise self.error(node, "number literal is out of range")
            return Const(NUMBER, v)
        if isinstance(v, str):
            return Const(STRING, v)
        if v is None:
            raise self.error(node, 'None is not allowed (absent strings are "", numbers 0)')
        raise self.error(node, f"{type(v).__name__} literals are not allowed")

    def name(self, node: ast.Name) -> Node:
        n = node.id
        if n in CONSTANTS:
            return Const(BOOLEAN, CONSTANTS[n])
        typ = self.features.get(n)
        if typ is not None:
            self.used_features[n] = None
            return Feature(typ, n)
        if n.startswith("__"):
            raise self.error(node, f"name '{n}' is not allowed (no dunder names)")
        if n in self.lists:
            self.soft(node, f"list '{n}' can only follow 'in' or 'not in'")
        elif n in FUNCTIONS:
            self.soft(node, f"function '{n}' must be called, e.g. {n}(...)")
        else:
            known = [*self.features, *self.lists]
            close = difflib.get_close_matches(n, known, n=1)
            hint = (
                f" (did you mean '{close[0]}'?)" if close else " (see 'fraudflow rules features')"
            )
            if "_fraud_rate_" in n or "_frauds_" in n or n in RETIRED_FEATURES:
                hint = " (retired with the in-flow feedback step: see docs/training.md)"
            self.soft(node, f"unknown feature or list '{n}'{hint}")
        return Node(UNKNOWN)

    def unary(self, node: ast.UnaryOp, depth: int) -> Node:
        if isinstance(node.op, ast.Not):
            return Not(BOOLEAN, self.expect(node.operand, depth, BOOLEAN, "'not'"))
        if isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.expect(
                node.operand,
                depth,
                NUMBER,
                f"unary '{'-' if isinstance(node.op, ast.USub) else '+'}'",
            )
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(operand, Const) and isinstance(operand.value, int | float):
                return Const(NUMBER, -operand.value)  # a negative literal
            return Neg(operand.typ, operand)
        raise self.error(node, f"operator '{_OP_SYMBOLS.get(type(node.op), '?')}' is not allowed")

    def compare(self, node: ast.Compare, depth: int) -> Node:
        for op in node.ops:
            if type(op) in (ast.Is, ast.IsNot):
                raise self.error(node, f"'{_OP_SYMBOLS[type(op)]}' is not allowed; use == or !=")
        if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if len(node.ops) != 1:
                raise self.error(node, "'in' cannot be chained with other comparisons; use 'and'")
            return self.member(node, depth)
        left = self.check(node.left, depth)
        prev, prev_ast = left, node.left
        ops: list[str] = []
        rights: list[Node] = []
        for op, comp in zip(node.ops, node.comparators, strict=True):
            sym = _CMP_OPS[type(op)]
            right = self.check(comp, depth)
            if UNKNOWN in (prev.typ, right.typ):
                pass
            elif sym in ("==", "!="):
                if prev.typ != right.typ:
                    self.soft(prev_ast, f"cannot compare a {prev.typ} with a {right.typ} ('{sym}')")
            elif prev.typ != NUMBER or right.typ != NUMBER:
                bad = prev.typ if prev.typ != NUMBER else right.typ
                self.soft(prev_ast, f"'{sym}' needs numbers on both sides, got a {bad}")
            ops.append(sym)
            rights.append(right)
            prev, prev_ast = right, comp
        return Compare(BOOLEAN, left, tuple(ops), tuple(rights))

    def member(self, node: ast.Compare, depth: int) -> Node:
        negate = isinstance(node.ops[0], ast.NotIn)
        word = "not in" if negate else "in"
        needle = self.check(node.left, depth)
        comp = node.comparators[0]
        hay: Node
        if isinstance(comp, ast.List | ast.Tuple | ast.Set):
            hay = self.literal_list(comp)
        elif isinstance(comp, ast.Name) and comp.id in self.lists:
            self.nodes += 1
            ldef = self.lists[comp.id]
            self.used_lists[comp.id] = None
            hay = Values(ldef.typ, ldef.values, ldef.name)
        else:
            hay = self.check(comp, depth)
            if hay.typ == UNKNOWN:
                pass
            elif hay.typ not in (STRING,):
                self.soft(comp, f"'{word}' needs a list or a string on its right, got a {hay.typ}")
            elif needle.typ not in (STRING, UNKNOWN):
                self.soft(
                    node.left,
                    f"substring test '{word}' needs a string on its left, got a {needle.typ}",
                )
            return Member(BOOLEAN, needle, hay, negate)
        elem = LIST_TYPES[hay.typ]
        if needle.typ not in (NUMBER, STRING, UNKNOWN):
            self.soft(
                node.left, f"'{word}' needs a number or a string on its left, got a {needle.typ}"
            )
        elif elem is not None and needle.typ not in (elem, UNKNOWN):
            self.soft(node.left, f"cannot look for a {needle.typ} in a {hay.typ}")
        return Member(BOOLEAN, needle, hay, negate)

    def literal_list(self, node: ast.List | ast.Tuple | ast.Set) -> Values:
        if len(node.elts) > MAX_LIST_LITERAL:
            raise self.error(
                node,
                f"list literal has {len(node.elts)} items; the limit is "
                f"{MAX_LIST_LITERAL} (use a list file)",
            )
        values: list[Any] = []
        types: set[str] = set()
        for e in node.elts:
            self.nodes += 1
            v: Any
            if (
                isinstance(e, ast.Constant)
                and isinstance(e.value, str | int | float)
                and not isinstance(e.value, bool)
            ):
                v = e.value
            elif (
                isinstance(e, ast.UnaryOp)
                and isinstance(e.op, ast.USub)
                and isinstance(e.operand, ast.Constant)
                and isinstance(e.operand.value, int | float)
                and not isinstance(e.operand.value, bool)
            ):
                v = -e.operand.value
            else:
                raise self.error(e, "list literal items must be string or number literals")
            if isinstance(v, float) and not math.isfinite(v):
                raise self.error(e, "number literal is out of range")
            types.add(STRING if isinstance(v, str) else NUMBER)
            values.append(v)
        if len(types) > 1:
            raise self.error(node, "list literal mixes strings and numbers")
        typ = {NUMBER: LIST_NUMBER, STRING: LIST_STRING}.get(next(iter(types), ""), LIST_EMPTY)
        return Values(typ, frozenset(values), None)

    def call(self, node: ast.Call, depth: int) -> Node:
        f = node.func
        if isinstance(f, ast.Attribute):
            raise self.error(node, _FORBIDDEN[ast.Attribute])
        if not isinstance(f, ast.Name):
            raise self.error(node, "only allowlisted functions can be called, by name")
        if f.id.startswith("__"):
            raise self.error(node, f"name '{f.id}' is not allowed (no dunder names)")
        spec = FUNCTIONS.get(f.id)
        if spec is None:
            raise self.error(
                node, f"function '{f.id}' is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})"
            )
        if node.keywords:
            raise self.error(node, f"{f.id}() takes no keyword arguments")
        nargs = len(node.args)
        if spec.variadic:
            if nargs < 2:
                raise self.error(node, f"{f.id}() needs at least 2 arguments, got {nargs}")
            types = spec.args * nargs
        else:
            if nargs != len(spec.args):
                raise self.error(node, f"{f.id}() takes {len(spec.args)} argument(s), got {nargs}")
            types = spec.args
        args = tuple(
            self.expect(a, depth, t, f"argument {i + 1} of {f.id}()")
            for i, (a, t) in enumerate(zip(node.args, types, strict=True))
        )
        if any(a.typ == UNKNOWN for a in args):
            return Node(UNKNOWN)
        return Call(spec.result, f.id, args)


def parse_expr(
    text: str,
    features: Mapping[str, str],
    lists: Mapping[str, ListDef] | None = None,
    want: str | None = BOOLEAN,
) -> Expr:
    """Check ``text`` against the language and the names; raise ``ExprError`` if invalid.

    The error raised is the first in the text; ``.others`` holds the other name and
    type problems (syntax and forbidden constructs stop the check at once).

    ``features`` maps feature names to their language type (see :data:`PY_TYPES`).

    >>> types = {"amount": NUMBER, "country": STRING}
    >>> parse_expr("amount > 100 and country in ['NL', 'BE']", types).features
    ('amount', 'country')
    """
    if not isinstance(text, str):
        raise ExprError("expression must be a string")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression is {len(text)} characters; the limit is {MAX_EXPR_CHARS}")
    if not text.strip():
        raise ExprError("expression is empty")
    if "\x00" in text:
        raise ExprError("expression contains a NUL character")
    try:
        tree = ast.parse("(\n" + text + "\n)", mode="eval")
    except SyntaxError as e:
        lines = text.split("\n")
        line = (e.lineno or 2) - 1
        col = max(0, (e.offset or 1) - 1)
        if line < 1:
            line, col = 1, 0
        elif line > len(lines):
            line, col = len(lines), len(lines[-1])
        raise ExprError(f"syntax error: {e.msg}", line, col) from None
    except (ValueError, MemoryError, RecursionError) as e:
        raise ExprError(f"cannot parse expression: {type(e).__name__}") from None
    checker = _Checker(text, features, lists or {})
    try:
        root = checker.check(tree.body, 0)
    except RecursionError:
        raise ExprError("expression is nested too deeply") from None
    if want is not None and root.typ not in (want, UNKNOWN):
        checker.soft(tree.body, f"expression must be a condition (true/false), got a {root.typ}")
    if checker.errors:
        first, *rest = sorted(checker.errors, key=lambda e: (e.line, e.column))
        first.others = rest
        raise first
    return Expr(text, root, tuple(checker.used_features), tuple(checker.used_lists))


# ---------------------------------------------------------------------------
# closures: the reference evaluator

_CMP_FUNCS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH_FUNCS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def to_closure(node: Node) -> Evaluator:
    """A function of the row that evaluates ``node`` (raises ZeroDivisionError on x / 0)."""
    if isinstance(node, Const):
        value = node.value
        return lambda r: value
    if isinstance(node, Feature):
        name = node.name
        return lambda r: r[name]
    if isinstance(node, Values):
        values = node.values
        return lambda r: values
    if isinstance(node, Not):
        f = to_closure(node.operand)
        return lambda r: not f(r)
    if isinstance(node, BoolOp):
        fs = tuple(to_closure(o) for o in node.operands)
        if node.op == "and":
            return lambda r: all(f(r) for f in fs)
        return lambda r: any(f(r) for f in fs)
    if isinstance(node, Neg):
        f = to_closure(node.operand)
        return lambda r: -f(r)
    if isinstance(node, Arith):
        op, lf, rf = _ARITH_FUNCS[node.op], to_closure(node.left), to_closure(node.right)
        return lambda r: op(lf(r), rf(r))
    if isinstance(node, Compare):
        return _compare_closure(node)
    if isinstance(node, Member):
        nf, hf = to_closure(node.needle), to_closure(node.hay)
        if node.negate:
            return lambda r: nf(r) not in hf(r)
        return lambda r: nf(r) in hf(r)
    if isinstance(node, Call):
        impl = FUNCTIONS[node.fn].impl
        afs = tuple(to_closure(a) for a in node.args)
        return lambda r: impl(*(a(r) for a in afs))
    raise TypeError(f"unknown node {node!r}")


def _compare_closure(node: Compare) -> Evaluator:
    first = to_closure(node.left)
    steps = tuple(
        (_CMP_FUNCS[o], to_closure(n)) for o, n in zip(node.ops, node.rights, strict=True)
    )

    def run(r: Row) -> bool:
        prev = first(r)
        for op, f in steps:
            cur = f(r)
            if not op(prev, cur):
                return False
            prev = cur
        return True

    return run


# ---------------------------------------------------------------------------
# Python syntax trees built from checked nodes (never from rule text)

_PY_CMP: dict[str, type[ast.cmpop]] = {
    "==": ast.Eq,
    "!=": ast.NotEq,
    "<": ast.Lt,
    "<=": ast.LtE,
    ">": ast.Gt,
    ">=": ast.GtE,
}
_PY_ARITH: dict[str, type[ast.operator]] = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div}


class Symbols:
    """Names in generated code: ``_v<i>`` feature locals, ``_s<i>`` sets, ``_f_<fn>`` functions."""

    def __init__(self) -> None:
        self.features: dict[str, str] = {}
        self.sets: dict[frozenset[Any], str] = {}
        self.functions: dict[str, str] = {}

    def feature(self, name: str) -> str:
        return self.features.setdefault(name, f"_v{len(self.features)}")

    def valueset(self, values: frozenset[Any]) -> str:
        return self.sets.setdefault(values, f"_s{len(self.sets)}")

    def function(self, fn: str) -> str:
        if fn not in FUNCTIONS:  # checked already; generated code only ever names allowlisted ones
            raise ValueError(fn)
        return self.functions.setdefault(fn, f"_f_{fn}")

    def namespace(self) -> dict[str, Any]:
        """Globals for generated code: no builtins, only our sets and functions."""
        ns: dict[str, Any] = {"__builtins__": {}}
        ns.update({name: values for values, name in self.sets.items()})
        ns.update({name: FUNCTIONS[fn].impl for fn, name in self.functions.items()})
        return ns


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def to_pyast(node: Node, sym: Symbols) -> ast.expr:
    """The Python expression equivalent to ``node`` over locals named by ``sym``."""
    if isinstance(node, Const):
        return ast.Constant(value=node.value)
    if isinstance(node, Feature):
        return _load(sym.feature(node.name))
    if isinstance(node, Values):
        return _load(sym.valueset(node.values))
    if isinstance(node, Not):
        return ast.UnaryOp(op=ast.Not(), operand=to_pyast(node.operand, sym))
    if isinstance(node, BoolOp):
        op: ast.boolop = ast.And() if node.op == "and" else ast.Or()
        return ast.BoolOp(op=op, values=[to_pyast(o, sym) for o in node.operands])
    if isinstance(node, Neg):
        return ast.UnaryOp(op=ast.USub(), operand=to_pyast(node.operand, sym))
    if isinstance(node, Arith):
        return ast.BinOp(
            left=to_pyast(node.left, sym), op=_PY_ARITH[node.op](), right=to_pyast(node.right, sym)
        )
    if isinstance(node, Compare):
        return ast.Compare(
            left=to_pyast(node.left, sym),
            ops=[_PY_CMP[o]() for o in node.ops],
            comparators=[to_pyast(n, sym) for n in node.rights],
        )
    if isinstance(node, Member):
        mop: ast.cmpop = ast.NotIn() if node.negate else ast.In()
        return ast.Compare(
            left=to_pyast(node.needle, sym), ops=[mop], comparators=[to_pyast(node.hay, sym)]
        )
    if isinstance(node, Call):
        return ast.Call(
            func=_load(sym.function(node.fn)),
            args=[to_pyast(a, sym) for a in node.args],
            keywords=[],
        )
    raise TypeError(f"unknown node {node!r}")

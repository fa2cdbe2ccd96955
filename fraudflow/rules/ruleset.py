"""A loaded, checked rule set and its compiled batch evaluator.

All enabled rules are compiled once, at load, into one Python function built
from checked expression trees (see ``expr.to_pyast``): per row it reads the
features the rules use into locals, then tests each rule in file order. A rule
whose arithmetic fails on a row (``x / 0``) does not fire on that row; the
failures are counted per rule in ``RuleSet.errors``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fraudflow.records import RuleHit
from fraudflow.rules.expr import Expr, ListDef, Symbols, to_pyast

TIERS = ("review", "block")
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Rule:
    """One checked rule, as written in ``file`` at ``line``."""

    id: str
    description: str
    when: str
    score: float
    tier: str | None
    severity: str
    enabled: bool
    tags: tuple[str, ...]
    owner: str
    scope: str | None
    file: str
    line: int
    when_expr: Expr = field(repr=False, compare=False)
    must_review: bool = False  # a policy rule: its tier bypasses the alert budget
    scope_expr: Expr | None = field(default=None, repr=False, compare=False)

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names ``when`` reads (the ``values`` of a hit)."""
        return self.when_expr.features

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Reference check of one row (closures, slow): enabled, in scope and ``when`` true."""
        if not self.enabled:
            return False
        if self.scope_expr is not None and not self.scope_expr.evaluate(row):
            return False
        return bool(self.when_expr.evaluate(row))

    def hit(self, row: Mapping[str, Any]) -> RuleHit:
        return RuleHit(
            self.id,
            self.score,
            self.tier,
            self.severity,
            self.description,
            {n: row[n] for n in self.features},
            self.must_review,
        )


BatchFn = Callable[[Sequence[Mapping[str, Any]]], list[list[RuleHit]]]


class RuleSet:
    """Checked rules with a content-hash ``version``; evaluate rows one by one or in batches."""

    def __init__(
        self, version: str, rules: Sequence[Rule], lists: Mapping[str, ListDef] | None = None
    ) -> None:
        self.version = version
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.lists: dict[str, ListDef] = dict(lists or {})
        self.errors: list[int] = [0] * len(self.rules)
        self._batch = _compile(self.rules, self.errors)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet(version={self.version!r}, rules={len(self.rules)})"

    def evaluate(self, features: Mapping[str, Any]) -> list[RuleHit]:
        """Hits of the enabled rules on one feature record, in rule order."""
        return self._batch((features,))[0]

    def evaluate_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[list[RuleHit]]:
        """``evaluate`` for each row, in one call (the flow's path)."""
        return self._batch(rows)


def _compile(rules: Sequence[Rule], errors: list[int]) -> BatchFn:
    """One generated function over a batch of rows, from checked trees only.

    Shape (names are ours, never a rule's)::

        def _batch(_rows):
            _out = []
            for _row in _rows:
                _v0 = _row['amount']; _v1 = _row['count_1m']
                _h = []
                try:
                    if <scope0> and <when0>:
                        _h.append(_m0(_row))
                except ArithmeticError:
                    _e(0)
                ...
                _out.append(_h)
            return _out
    """
    sym = Symbols()
    per_rule: list[ast.stmt] = []
    makers: dict[str, Callable[[Mapping[str, Any]], RuleHit]] = {}
    for i, rule in enumerate(rules):
        if not rule.enabled:
            continue
        test = to_pyast(rule.when_expr.root, sym)
        if rule.scope_expr is not None:
            test = ast.BoolOp(op=ast.And(), values=[to_pyast(rule.scope_expr.root, sym), test])
        makers[f"_m{i}"] = rule.hit
        fire = ast.Expr(
            ast.Call(func=_attr("_h", "append"), args=[_call(f"_m{i}", _name("_row"))], keywords=[])
        )
        per_rule.append(
            ast.Try(
                body=[ast.If(test=test, body=[fire], orelse=[])],
                handlers=[
                    ast.ExceptHandler(
                        type=_name("ArithmeticError"),
                        name=None,
                        body=[ast.Expr(_call("_e", ast.Constant(i)))],
                    )
                ],
                orelse=[],
                finalbody=[],
            )
        )
    loads: list[ast.stmt] = [
        ast.Assign(
            targets=[ast.Name(id=local, ctx=ast.Store())],
            value=ast.Subscript(value=_name("_row"), slice=ast.Constant(feature), ctx=ast.Load()),
        )
        for feature, local in sym.features.items()
    ]
    loop = ast.For(
        target=ast.Name(id="_row", ctx=ast.Store()),
        iter=_name("_rows"),
        body=[
            *loads,
            ast.Assign(
                targets=[ast.Name(id="_h", ctx=ast.Store())],
                value=ast.List(elts=[], ctx=ast.Load()),
            ),
            *per_rule,
            ast.Expr(ast.Call(func=_attr("_out", "append"), args=[_name("_h")], keywords=[])),
        ],
        orelse=[],
    )
    fn = ast.FunctionDef(
        name="_batch",
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg(arg="_rows")], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=[
            ast.Assign(
                targets=[ast.Name(id="_out", ctx=ast.Store())],
                value=ast.List(elts=[], ctx=ast.Load()),
            ),
            loop,
            ast.Return(value=_name("_out")),
        ],
        decorator_list=[],
    )
    module = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))

    def count_error(i: int) -> None:
        errors[i] += 1

    namespace = sym.namespace()
    namespace.update(makers)
    namespace["_e"] = count_error
    namespace["ArithmeticError"] = ArithmeticError
    code = compile(module, "<fraudflow rules>", "exec")
    # Safe: ``module`` is built above from checked nodes only, with our own names,
    # and runs with no builtins; rule text never reaches compile().
    exec(code, namespace)  # noqa: S102
    batch: BatchFn = namespace["_batch"]
    return batch


def _name(n: str) -> ast.Name:
    return ast.Name(id=n, ctx=ast.Load())


def _attr(obj: str, attr: str) -> ast.Attribute:
    return ast.Attribute(value=_name(obj), attr=attr, ctx=ast.Load())


def _call(fn: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=_name(fn), args=list(args), keywords=[])

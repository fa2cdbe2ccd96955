"""The expression language: what it accepts, what it computes, what it rejects and where."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudflow.rules.expr import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_EXPR_CHARS,
    PY_TYPES,
    ExprError,
    ListDef,
    parse_expr,
)
from fraudflow.rules.ruleset import Rule, RuleSet
from fraudflow.rules.testing import base_record
from tests.unit.rules.conftest import CATALOGUE

TYPES = {n: PY_TYPES[s.type] for n, s in CATALOGUE.items()}
LISTS = {
    "risky": ListDef("risky", "string", frozenset({"gambling", "crypto"})),
    "codes": ListDef("codes", "number", frozenset({1, 2.5})),
    "nothing": ListDef("nothing", None, frozenset()),
}


def rec(**kw: Any) -> dict[str, Any]:
    r = base_record(CATALOGUE)
    r.update(kw)
    return r


def compiled(text: str) -> RuleSet:
    """A one-rule set over ``text`` (the generated-code path)."""
    e = parse_expr(text, TYPES, LISTS)
    return RuleSet("v", [Rule("r", "d", text, 0.5, None, "low", True, (), "", None, "f", 1, e)])


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("amount > 10", {"amount": 10.5}, True),
        ("amount > 10", {"amount": 10.0}, False),
        ("0 < amount <= 5", {"amount": 5.0}, True),
        ("0 < amount <= 5", {"amount": 0.0}, False),
        ("count_1m >= 4 and amount < 5", {"count_1m": 4, "amount": 1.0}, True),
        ("count_1m >= 4 or amount < 5", {"count_1m": 0, "amount": 9.0}, False),
        ("not new_device", {"new_device": False}, True),
        ("new_device == true", {"new_device": True}, True),
        ("new_device == False", {"new_device": True}, False),
        ("merchant_category in risky", {"merchant_category": "crypto"}, True),
        ("merchant_category not in risky", {"merchant_category": "crypto"}, False),
        ("country in ['NL', 'BE']", {"country": "BE"}, True),
        ("hour in (1, 2, 3)", {"hour": 2}, True),
        ("amount in codes", {"amount": 2.5}, True),
        ("amount in {-1, 7}", {"amount": -1.0}, True),
        ("country in nothing", {"country": "NL"}, False),
        ("'10.0.' in ip", {"ip": "10.0.1.2"}, True),
        ("amount * 2 - 1 > amount_mean / 4 + 3", {"amount": 10.0, "amount_mean": 8.0}, True),
        ("-amount_z > 2", {"amount_z": -3.0}, True),
        ("-(-2) == 2 and -abs(-2) == -2", {}, True),
        ("+amount_z > 2", {"amount_z": 3.0}, True),
        ("abs(amount_z) > 2", {"amount_z": -3.0}, True),
        (
            "max(amount_z, amount_iqr_excess, 0) >= 3",
            {"amount_z": 1.0, "amount_iqr_excess": 3.0},
            True,
        ),
        ("min(count_1m, count_1h) == 2", {"count_1m": 2, "count_1h": 9}, True),
        ("lower(country) == 'nl'", {"country": "NL"}, True),
        ("upper(channel) == 'ONLINE'", {"channel": "online"}, True),
        ("len(device_id) == 0", {"device_id": ""}, True),
        ("startswith(ip, '10.') and endswith(ip, '.1')", {"ip": "10.2.3.1"}, True),
        ('channel == "online"', {"channel": "online"}, True),
        ("amount / amount_mean > 3", {"amount": 10.0, "amount_mean": 0.0}, None),  # x / 0: no fire
    ],
)
def test_evaluates_like_python(text: str, row: dict[str, Any], expected: bool | None) -> None:
    r = rec(**row)
    rs = compiled(text)
    fired = bool(rs.evaluate(r))
    if expected is None:
        with pytest.raises(ZeroDivisionError):
            parse_expr(text, TYPES, LISTS).evaluate(r)
        assert not fired
        assert rs.errors == [1]
    else:
        assert parse_expr(text, TYPES, LISTS).evaluate(r) is expected
        assert fired is expected


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("amout > 5", "unknown feature or list 'amout' (did you mean 'amount'?)", 0),
        ("amount > 'x'", "'>' needs numbers on both sides, got a string", 0),
        ("channel == 3", "cannot compare a string with a number", 0),
        ("country < 'M'", "'<' needs numbers on both sides, got a string", 0),
        ("amount + country > 1", "'+' needs a number, got a string", 9),
        ("new_device and amount", "'and' needs a boolean, got a number", 15),
        ("amount", "expression must be a condition (true/false), got a number", 0),
        ("amount in risky", "cannot look for a number in a list of strings", 0),
        ("country in amount", "'in' needs a list or a string on its right, got a number", 11),
        ("amount in ip", "substring test 'in' needs a string on its left", 0),
        ("country in [1, 'a']", "list literal mixes strings and numbers", 11),
        ("country in [channel]", "list literal items must be string or number literals", 12),
        ("risky == 1", "list 'risky' can only follow 'in' or 'not in'", 0),
        ("[1] == 1", "a list can only follow 'in' or 'not in'", 0),
        ("country in risky in risky", "'in' cannot be chained", 0),
        ("-'' == ''", "unary '-' needs a number, got a string", 1),
        ("amount is 1", "'is' is not allowed; use == or !=", 0),
        ("amount ** 2 > 1", "operator '**' is not allowed", 0),
        ("amount % 2 == 1", "operator '%' is not allowed", 0),
        ("~hour == 1", "operator '~' is not allowed", 0),
        ("lower == 1", "function 'lower' must be called", 0),
        ("lower(amount) == 'x'", "argument 1 of lower() needs a string, got a number", 6),
        ("max(amount) > 1", "max() needs at least 2 arguments, got 1", 0),
        ("abs(amount, 1) > 1", "abs() takes 1 argument(s), got 2", 0),
        ("abs(x=amount) > 1", "abs() takes no keyword arguments", 0),
        ("len(risky) > 1", "list 'risky' can only follow", 4),
        ("amount == None", "None is not allowed", 10),
        ("amount > 1e999", "number literal is out of range", 9),
        ("amount > 5 and", "syntax error", 14),
        ("", "expression is empty", 0),
        ("amount if new_device else 0", "'x if c else y' is not allowed", 0),
        ("f'{amount}' == 'x'", "f-strings are not allowed", 0),
        ("{'a': 1} == 1", "dict literals are not allowed", 0),
        ("b'x' == 'x'", "bytes literals are not allowed", 0),
        ("(x := 1) == 1", "':=' is not allowed", 1),
    ],
)
def test_rejects_with_message_and_column(text: str, message: str, column: int) -> None:
    with pytest.raises(ExprError) as info:
        parse_expr(text, TYPES, LISTS)
    assert message in info.value.message
    assert (info.value.line, info.value.column) == (1, column)


def test_reports_every_name_and_type_problem_of_an_expression() -> None:
    with pytest.raises(ExprError) as info:
        parse_expr("amout > 5 and channel == 3 or not cuntry", TYPES, LISTS)
    found = [(e.column, e.message.split(" (")[0]) for e in info.value.all]
    assert found == [
        (0, "unknown feature or list 'amout'"),
        (14, "cannot compare a string with a number"),
        (34, "unknown feature or list 'cuntry'"),
    ]


def test_multiline_positions() -> None:
    with pytest.raises(ExprError) as info:
        parse_expr("amount > 5 and\n  device_id.lower() == 'x'", TYPES, LISTS)
    assert (info.value.line, info.value.column) == (2, 2)


def test_features_and_lists_used_in_order() -> None:
    e = parse_expr(
        "merchant_category in risky and amount > amount_mean and amount > 1", TYPES, LISTS
    )
    assert e.features == ("merchant_category", "amount", "amount_mean")
    assert e.lists == ("risky",)


def test_limits() -> None:
    with pytest.raises(ExprError, match="characters; the limit is"):
        parse_expr("amount > 1 and " * (MAX_EXPR_CHARS // 10) + "true", TYPES, LISTS)
    with pytest.raises(ExprError, match="nested too deeply"):
        parse_expr("not " * (MAX_DEPTH + 5) + "new_device", TYPES, LISTS)
    with pytest.raises(ExprError, match="too large"):
        parse_expr(" or ".join(["hour<1"] * 190), TYPES, LISTS)
    with pytest.raises(ExprError, match=r"nested parentheses|nested too deeply"):
        parse_expr("(" * 300 + "new_device" + ")" * 300, TYPES, LISTS)


# ---------------------------------------------------------------------------
# property tests

NUM = ["amount", "count_1m", "amount_z", "txn_count", "hour", "travel_kmh"]
STR = ["country", "channel", "merchant_category", "ip"]
BOOL = ["new_device", "new_country", "unusual_hour"]
WORDS = ["NL", "online", "", "gambling", "10.", "crypto"]

num_leaf = st.one_of(
    st.sampled_from(NUM),
    st.integers(-1000, 1000).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
)
str_leaf = st.one_of(st.sampled_from(STR), st.sampled_from(WORDS).map(repr))


def _num(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"-{x}"),
        inner.map(lambda x: f"abs({x})"),
        st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        str_leaf.map(lambda s: f"len({s})"),
    )


num_expr = st.recursive(num_leaf, _num, max_leaves=6)
str_expr = st.one_of(
    str_leaf,
    st.tuples(st.sampled_from(["lower", "upper"]), str_leaf).map(lambda t: f"{t[0]}({t[1]})"),
)
bool_leaf = st.one_of(
    st.sampled_from([*BOOL, "true", "false", "True", "False"]),
    st.tuples(num_expr, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), num_expr).map(
        " ".join
    ),
    st.tuples(
        num_expr, st.sampled_from(["<", "<="]), num_expr, st.sampled_from(["<", "<="]), num_expr
    ).map(" ".join),
    st.tuples(str_expr, st.sampled_from(["==", "!="]), str_expr).map(" ".join),
    st.tuples(
        str_expr,
        st.sampled_from(["in", "not in"]),
        st.sampled_from(["risky", "nothing", "['NL', 'x']", "ip"]),
    ).map(" ".join),
    st.tuples(
        num_expr, st.sampled_from(["in", "not in"]), st.sampled_from(["codes", "[1, 2.5, -3]"])
    ).map(" ".join),
    st.tuples(st.sampled_from(["startswith", "endswith"]), str_expr, str_expr).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})"
    ),
)
bool_expr = st.recursive(
    bool_leaf,
    lambda inner: st.one_of(
        inner.map(lambda x: f"not ({x})"),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
    ),
    max_leaves=6,
)
records = st.fixed_dictionaries(
    {
        **{n: st.floats(-1e9, 1e9, allow_nan=False) for n in ("amount", "amount_z", "travel_kmh")},
        **{n: st.integers(-(10**6), 10**6) for n in ("count_1m", "txn_count", "hour")},
        **{n: st.one_of(st.sampled_from(WORDS), st.text(max_size=8)) for n in STR},
        **{n: st.booleans() for n in BOOL},
    }
)
ORACLE_NS: dict[str, Any] = {
    "__builtins__": {},
    **{n: f.impl for n, f in FUNCTIONS.items()},
    "true": True,
    "false": False,
    "risky": LISTS["risky"].values,
    "nothing": LISTS["nothing"].values,
    "codes": LISTS["codes"].values,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=bool_expr, values=records)
def test_well_formed_expressions_compile_and_agree_with_python(
    text: str, values: dict[str, Any]
) -> None:
    """Closures, generated code and Python itself give the same answer (or all divide by zero)."""
    row = rec(**values)
    expr = parse_expr(text, TYPES, LISTS)
    try:
        expected = eval(text, dict(ORACLE_NS), row)
    except ZeroDivisionError:
        expected = ZeroDivisionError
    try:
        got: Any = expr.evaluate(row)
    except ZeroDivisionError:
        got = ZeroDivisionError
    assert got == expected
    assert got is ZeroDivisionError or isinstance(got, bool)
    fired = bool(compiled(text).evaluate(row))
    assert fired == (got is True)


TOKENS = [
    "amount",
    "country",
    "risky",
    "__import__",
    "__class__",
    "open",
    "eval",
    "exec",
    "os",
    "system",
    "lambda",
    ":",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    "'x'",
    '"/tmp/pwned"',
    "1",
    "0",
    "-",
    "+",
    "*",
    "/",
    "**",
    "and",
    "or",
    "not",
    "in",
    "==",
    "<",
    "if",
    "else",
    "for",
    "import",
    "@",
    ";",
    "\n",
    " ",
    "#",
    "\\",
    "yield",
    "await",
    "lower",
    "max",
    ":=",
    "...",
    "__builtins__",
    "globals",
]


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join)
    )
)
def test_arbitrary_text_either_compiles_or_gives_a_diagnostic(text: str) -> None:
    """Nothing but Expr or ExprError comes out, and a compiled result only evaluates."""
    try:
        expr = parse_expr(text, TYPES, LISTS)
    except ExprError as e:
        problem: ExprError | None = e
    else:
        problem = None
    if problem is not None:
        assert problem.message
        assert problem.line >= 1
        assert problem.column >= 0
        return
    row = rec()
    with contextlib.suppress(ArithmeticError):
        assert isinstance(expr.evaluate(row), bool)
    compiled(text).evaluate(row)

"""Loading rule directories: fields, lists, every diagnostic with its place, versions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from fraudflow.config.settings import DEFAULT_RULES_DIR
from fraudflow.operators.features.catalogue import FeatureSpec
from fraudflow.rules import Diagnostic, RuleError, RuleHit, load_rules
from fraudflow.rules.loader import load_directory
from tests.unit.rules.conftest import WriteRules

GOOD = """\
lists:
  risky: [gambling, crypto]
  blocked: {file: lists/blocked.txt}
  limits: {values: [1, 2.5], type: number}
rules:
  - id: risky_first
    description: first payment in a risky category
    when: new_category and merchant_category in risky
    score: 0.5
    severity: high
    tags: [merchant]
    owner: team-a
  - id: blocked_device
    description: device on the deny list
    when: device_id in blocked
    tier: block
  - id: online_big
    description: big online payment
    scope: channel == "online"
    when: amount > 1000
    score: 0.3
  - id: dormant
    description: disabled
    when: amount >= 0
    score: 1
    enabled: false
"""


def errors(directory: Path, catalogue: dict[str, FeatureSpec]) -> list[str]:
    with pytest.raises(RuleError) as info:
        load_rules(directory, catalogue)
    return [str(d) for d in info.value.diagnostics]


def test_loads_fields_lists_and_defaults(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules({"a.yaml": GOOD, "lists/blocked.txt": "# comment\nd-1\n\n  d-2  \n"})
    rs = load_rules(d, catalogue)
    assert rs.rule_ids == ("risky_first", "blocked_device", "online_big", "dormant")
    r = rs.rules[0]
    assert (r.score, r.tier, r.severity, r.enabled, r.tags, r.owner) == (
        0.5,
        None,
        "high",
        True,
        ("merchant",),
        "team-a",
    )
    assert (r.file, r.line) == (str(d / "a.yaml"), 6)
    b = rs.rules[1]
    assert (b.score, b.tier, b.severity, b.owner, b.tags) == (0.0, "block", "medium", "", ())
    assert rs.lists["blocked"].values == frozenset({"d-1", "d-2"})
    assert rs.lists["limits"].values == frozenset({1, 2.5})
    assert len(rs.version) == 12
    int(rs.version, 16)


def test_evaluate_scope_disabled_and_values(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], record: dict[str, Any]
) -> None:
    rs = load_rules(write_rules({"a.yaml": GOOD, "lists/blocked.txt": "d-1\n"}), catalogue)
    assert rs.evaluate(record) == []  # 'dormant' would fire on anything, but it is disabled
    row = {
        **record,
        "new_category": True,
        "merchant_category": "crypto",
        "device_id": "d-1",
        "amount": 5000.0,
    }
    hits = rs.evaluate(row)
    assert [h.rule_id for h in hits] == [
        "risky_first",
        "blocked_device",
    ]  # online_big: out of scope
    assert hits[0] == RuleHit(
        "risky_first",
        0.5,
        None,
        "high",
        "first payment in a risky category",
        {"new_category": True, "merchant_category": "crypto"},
    )
    assert hits[1].tier == "block"
    online = rs.evaluate_batch([row, {**row, "channel": "online"}, record])
    assert [[h.rule_id for h in hs] for hs in online] == [
        ["risky_first", "blocked_device"],
        ["risky_first", "blocked_device", "online_big"],
        [],
    ]
    assert rs.evaluate_batch([]) == []
    # the reference evaluator agrees with the compiled batch path
    for r, hs in zip([row, {**row, "channel": "online"}, record], online, strict=True):
        assert [rule.id for rule in rs.rules if rule.matches(r)] == [h.rule_id for h in hs]


def test_reports_all_problems_with_positions(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules(
        {
            "a.yaml": """\
            lists:
              risky: [gambling, NO]
              amount: [1]
              ext: {file: ../outside.txt}
              gone: {file: lists/missing.txt}
            rules:
              - id: r1
                description: typo in a feature
                when: amout > 5 and channel == 3
                score: 1.5
              - id: r1
                description: duplicate id
                when: amount > 5
                tier: blokc
              - id: "9bad"
                description: bad id
                when: device_id.lower() == 'x'
                scroe: 0.3
                enabled: maybe
                tags: web
              - description: no id
                when: |
                  amount > 1 and
                    unknown_thing
                score: 0.1
            bogus: 1
            """,
            "b.yaml": "rules:\n  - id: x\n    when: [1\n",
        }
    )
    a, b = str(d / "a.yaml"), str(d / "b.yaml")
    assert errors(d, catalogue) == [
        f"{a}:2:21: list 'risky' values must be strings or numbers "
        "(YAML reads yes/no/on/off/NO as booleans: quote it, e.g. 'NO')",
        f"{a}:3:3: list name 'amount' is already a feature",
        f"{a}:4:15: list file '../outside.txt' is outside the rule directory",
        f"{a}:5:16: list file 'lists/missing.txt' is missing or unreadable",
        f"{a}:9:11: when: unknown feature or list 'amout' (did you mean 'amount'?)",
        f"{a}:9:25: when: cannot compare a string with a number ('==')",
        f"{a}:10:12: 'score' must be in [0, 1], got 1.5",
        f"{a}:11:9: duplicate rule id 'r1' (first defined at {a}:7)",
        f"{a}:14:11: 'tier' must be one of review, block, got 'blokc'",
        f"{a}:15:5: rule needs a 'score' in [0, 1] and/or a 'tier' (review|block)",
        f"{a}:15:9: rule id '9bad' must start with a letter and use letters, digits, _ . -"
        " (at most 80)",
        f"{a}:17:11: when: attribute access ('.') is not allowed; write lower(x), not x.lower()",
        f"{a}:18:5: unknown rule field 'scroe' (did you mean 'score'?)",
        f"{a}:19:14: 'enabled' must be true or false",
        f"{a}:20:11: 'tags' must be a list of strings",
        f"{a}:21:5: rule is missing 'id'",
        f"{a}:24:9: when: unknown feature or list 'unknown_thing' (see 'fraudflow rules features')",
        f"{a}:26:1: unknown top-level key 'bogus' (expected one of: lists, rules)",
        f"{b}:4:1: YAML: while parsing a flow sequence: "
        "expected ',' or ']', but got '<stream end>'",
    ]


def test_diagnostic_str_and_error() -> None:
    d = Diagnostic("r/a.yaml", 3, 7, "bad")
    assert str(d) == "r/a.yaml:3:7: bad"
    assert str(RuleError([d, d])) == "r/a.yaml:3:7: bad\nr/a.yaml:3:7: bad"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 1\n", "a rule file must be a map with 'rules' and/or 'lists'"),
        ("rules: {id: x}\n", "'rules' must be a sequence of rules"),
        ("rules: [1]\n", "each rule must be a map"),
        ("lists: [1]\n", "'lists' must be a map"),
        ("lists: {x: 3}\n", "list 'x' must be a sequence of values or a map"),
        ("lists: {x: {values: [1], file: a.txt}}\n", "needs exactly one of 'values' or 'file'"),
        ("lists: {x: {values: [1], type: int}}\n", "list 'type' must be 'string' or 'number'"),
        (
            "lists: {x: {values: [a], type: number}}\n",
            "list 'x' mixes strings and numbers (declared type number)",
        ),
        ("lists: {x: {values: [a], typo: 1}}\n", "unknown list field 'typo'"),
        ("lists: {x: [a, 1]}\n", "list 'x' mixes strings and numbers"),
        ("lists: {x: [[a]]}\n", "list 'x' values must be strings or numbers"),
        ("lists: {__x: [a]}\n", "list name '__x' must be an identifier"),
        ("lists: {lower: [a]}\n", "list name 'lower' is already a function"),
        ("lists: {x: {file: /etc/passwd}}\n", "must be a relative path"),
        (
            "rules: [{id: a, description: d, when: 'amount > 1', score: '0.5'}]\n",
            "'score' must be a number",
        ),
        (
            "rules: [{id: a, description: d, when: 'amount > 1', score: true}]\n",
            "'score' must be a number",
        ),
        (
            "rules: [{id: a, description: d, when: 'amount > 1', score: 0.1, severity: huge}]\n",
            "'severity' must be one of low, medium, high, critical",
        ),
        (
            "rules: [{id: a, description: '  ', when: 'amount > 1', score: 0.1}]\n",
            "'description' is empty",
        ),
        (
            "rules: [{id: a, description: d, when: 5, score: 0.1}]\n",
            "'when' must be an expression in a string",
        ),
        (
            "rules: [{id: a, description: d, when: 'amount > 1', scope: 'amount', score: 0.1}]\n",
            "scope: expression must be a condition",
        ),
        (
            "rules: [{id: 7, description: d, when: 'amount > 1', score: 0.1}]\n",
            "'id' must be a string",
        ),
        ("a: 1\na: 2\nrules: []\n", "duplicate key 'a' (first at line 1)"),
        (
            "rules: [{id: off, description: d, when: 'amount > 1', score: 0.1}]\n",
            "'id' must be a string (YAML reads yes/no/on/off/NO as booleans: quote it",
        ),
    ],
)
def test_field_errors(
    text: str, message: str, write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    found = errors(write_rules({"a.yaml": text}), catalogue)
    assert any(message in e for e in found), found


def test_list_file_of_numbers(write_rules: WriteRules, catalogue: dict[str, FeatureSpec]) -> None:
    d = write_rules(
        {
            "a.yaml": "lists: {h: {file: lists/h.txt, type: number}}\n"
            "rules: [{id: a, description: d, when: 'hour in h', score: 0.1}]\n",
            "lists/h.txt": "1\n2.5\n# c\n-3\n",
        }
    )
    assert load_rules(d, catalogue).lists["h"].values == frozenset({1, 2.5, -3})
    (d / "lists/h.txt").write_text("1\nx\n3\ny\n")
    assert errors(d, catalogue) == [
        f"{d / 'lists/h.txt'}:2:1: list 'h' has type number but this line is not a number",
        f"{d / 'lists/h.txt'}:4:1: list 'h' has type number but this line is not a number",
    ]


def test_lists_are_shared_across_files_and_unique(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules(
        {
            "a.yaml": "lists: {risky: [x]}\n",
            "b.yaml": "rules: [{id: a, description: d, when: 'country in risky', score: 0.1}]\n",
        }
    )
    assert load_rules(d, catalogue).rules[0].when_expr.lists == ("risky",)
    (d / "c.yaml").write_text("lists: {risky: [y]}\n")
    assert errors(d, catalogue) == [
        f"{d / 'c.yaml'}:1:9: duplicate list 'risky' (first defined at {d / 'a.yaml'}:1)"
    ]


def test_missing_and_empty_directory(tmp_path: Path, catalogue: dict[str, FeatureSpec]) -> None:
    assert errors(tmp_path / "nope", catalogue) == [
        f"{tmp_path / 'nope'}:0:0: rule directory does not exist or is not a directory"
    ]
    assert errors(tmp_path, catalogue) == [
        f"{tmp_path}:0:0: no rule files (*.yaml) in the rule directory"
    ]


def test_unknown_window_feature_needs_that_window(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules(
        {"a.yaml": "rules: [{id: a, description: d, when: 'count_7d > 1', score: 0.1}]\n"}
    )
    assert "unknown feature or list 'count_7d'" in errors(d, catalogue)[0]


def test_version_is_content_hash(tmp_path: Path, catalogue: dict[str, FeatureSpec]) -> None:
    """Same content: same version, wherever it lives, whatever its mtimes; any edit changes it."""
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(DEFAULT_RULES_DIR, one)
    shutil.copytree(DEFAULT_RULES_DIR, two)
    v = load_rules(DEFAULT_RULES_DIR, catalogue).version
    for path in two.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    assert load_rules(one, catalogue).version == v
    assert load_rules(two, catalogue).version == v
    lst = two / "lists" / "blocked_devices.txt"
    lst.write_text(lst.read_text() + "d-new\n")
    v2 = load_rules(two, catalogue).version
    assert v2 != v
    (two / "tests" / "extra.yaml").write_text("cases: []\n")  # tests do not change what runs
    assert load_rules(two, catalogue).version == v2
    f = two / "velocity.yaml"
    f.write_text(f.read_text().replace("score: 0.7", "score: 0.71"))
    assert load_rules(two, catalogue).version not in (v, v2)


def test_failed_load_still_reports_version_and_list_files(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules({"a.yaml": "lists: {x: {file: lists/x.txt}}\nrules: [{id: a}]\n"})
    r = load_directory(d, catalogue)
    assert r.ruleset is None
    assert r.list_files == ("lists/x.txt",)
    assert r.diagnostics


def test_must_review(write_rules: WriteRules, catalogue: dict[str, FeatureSpec]) -> None:
    """A policy rule keeps its tier over the alert budget; without a tier it reviews."""
    d = write_rules(
        {
            "a.yaml": """\
rules:
  - id: policy
    description: a compliance rule
    when: amount > 10
    score: 0.2
    must_review: true
  - id: ordinary
    description: an ordinary rule
    when: amount > 10
    tier: review
"""
        }
    )
    rs = load_rules(d, catalogue)
    policy, ordinary = rs.rules
    assert (policy.must_review, policy.tier, ordinary.must_review) == (True, "review", False)
    record = {name: "" if spec.type is str else spec.type() for name, spec in catalogue.items()}
    hits = rs.evaluate({**record, "amount": 50.0})
    assert [(h.rule_id, h.tier, h.must_review) for h in hits] == [
        ("policy", "review", True),
        ("ordinary", "review", False),
    ]
    bad = write_rules(
        {
            "b.yaml": "rules:\n  - id: x\n    description: y\n    when: amount > 1\n"
            "    score: 0.5\n    must_review: maybe\n"
        }
    )
    assert errors(bad, catalogue) == [f"{bad / 'b.yaml'}:6:18: 'must_review' must be true or false"]

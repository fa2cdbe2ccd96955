"""Rule test cases kept beside the rules: ``DIR/tests/*.yaml``.

A test file::

    defaults:                 # optional: merged under every case's features
      txn_count: 20
    cases:
      - name: five tiny charges in a minute
        features: {count_1m: 5, amount: 1.0}
        fires: [card_testing]         # these must fire
        not_fires: [large_amount]     # these must not
      - name: ordinary purchase
        features: {amount: 40.0}
        fires_only: []                # exactly these fire (here: none)

Features not given take :func:`base_record` values: ``""``, ``0``, ``false``,
except the few in :data:`NEUTRAL` whose zero would look unusual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudflow.operators.catalogue import FeatureSpec
from fraudflow.rules.errors import Diagnostic, RuleError
from fraudflow.rules.loader import MAX_RULE_FILE_BYTES, _suggest, read_entry
from fraudflow.rules.ruleset import RuleSet
from fraudflow.rules.yamlsafe import Y, YamlProblem, load_yaml

# values of a record with nothing unusual where the type's zero would be a signal
NEUTRAL: dict[str, Any] = {"secs_since_prev": 1e9, "hour_share": 1.0}
CASE_FIELDS = ("name", "features", "fires", "not_fires", "fires_only")


def base_record(catalogue: Mapping[str, FeatureSpec]) -> dict[str, Any]:
    """A complete feature record: ``""``, ``0``, ``0.0``, ``False``, and :data:`NEUTRAL` values."""
    zero: dict[type, Any] = {str: "", int: 0, float: 0.0, bool: False}
    return {name: NEUTRAL.get(name, zero[spec.type]) for name, spec in catalogue.items()}


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    line: int
    features: dict[str, Any]
    fires: tuple[str, ...]
    not_fires: tuple[str, ...]
    fires_only: tuple[str, ...] | None


@dataclass(frozen=True)
class CaseResult:
    case: Case
    fired: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def test_files(directory: Path) -> list[Path]:
    return sorted(p for p in (directory / "tests").glob("*.yaml") if p.is_file())


def load_cases(
    directory: Path, catalogue: Mapping[str, FeatureSpec], ruleset: RuleSet
) -> list[Case]:
    """Every case in ``DIR/tests/*.yaml``; ``RuleError`` with all problems if any file is bad."""
    diags: list[Diagnostic] = []
    cases: list[Case] = []
    ids = set(ruleset.rule_ids)
    base = base_record(catalogue)
    for path in test_files(directory):
        shown = str(path)
        data = read_entry(path, MAX_RULE_FILE_BYTES, directory)
        if data.startswith(b"\0"):
            diags.append(
                Diagnostic(
                    shown, 0, 0, f"missing, unreadable or larger than {MAX_RULE_FILE_BYTES} bytes"
                )
            )
            continue
        problems: list[YamlProblem] = []
        try:
            doc = load_yaml(data.decode("utf-8", errors="replace"), problems)
        except YamlProblem as exc:
            problems.append(exc)
            doc = None
        diags.extend(Diagnostic(shown, p.line, p.column, p.message) for p in problems)
        if doc is None:
            continue
        if doc.kind != "map" or "cases" not in doc.value:
            diags.append(
                Diagnostic(
                    shown,
                    doc.line,
                    doc.column,
                    "a test file is a map with 'cases' (and 'defaults')",
                )
            )
            continue
        for key, knode in doc.keys.items():
            if key not in ("cases", "defaults"):
                diags.append(Diagnostic(shown, knode.line, knode.column, f"unknown key '{key}'"))
        defaults: dict[str, Any] = {}
        if "defaults" in doc.value:
            defaults = _features(doc.value["defaults"], catalogue, shown, diags)
        seq = doc.value["cases"]
        if seq.kind != "seq":
            diags.append(Diagnostic(shown, seq.line, seq.column, "'cases' must be a sequence"))
            continue
        for item in seq.value:
            case = _case(item, catalogue, ids, {**base, **defaults}, shown=shown, diags=diags)
            if case is not None:
                cases.append(case)
    if diags:
        raise RuleError(sorted(diags))
    return cases


def _features(
    y: Y, catalogue: Mapping[str, FeatureSpec], shown: str, diags: list[Diagnostic]
) -> dict[str, Any]:
    if y.kind != "map":
        diags.append(
            Diagnostic(shown, y.line, y.column, "features must be a map of feature name -> value")
        )
        return {}
    out: dict[str, Any] = {}
    for name, v in y.value.items():
        k = y.keys[name]
        spec = catalogue.get(name)
        if spec is None:
            diags.append(
                Diagnostic(
                    shown, k.line, k.column, f"unknown feature '{name}'{_suggest(name, catalogue)}"
                )
            )
            continue
        value = v.value
        ok = v.kind == "scalar" and (
            isinstance(value, bool)
            if spec.type is bool
            else isinstance(value, str)
            if spec.type is str
            else isinstance(value, int) and not isinstance(value, bool)
            if spec.type is int
            else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not ok:
            diags.append(
                Diagnostic(
                    shown,
                    v.line,
                    v.column,
                    f"feature '{name}' has type {spec.type.__name__}, "
                    f"got {type(value).__name__} {value!r}",
                )
            )
            continue
        out[name] = float(value) if spec.type is float else value
    return out


def _ids(y: Y | None, ids: set[str], shown: str, diags: list[Diagnostic]) -> tuple[str, ...] | None:
    if y is None:
        return None
    if y.kind != "seq" or not all(i.kind == "scalar" and isinstance(i.value, str) for i in y.value):
        diags.append(Diagnostic(shown, y.line, y.column, "expected a list of rule ids"))
        return ()
    for i in y.value:
        if i.value not in ids:
            diags.append(
                Diagnostic(
                    shown, i.line, i.column, f"unknown rule id '{i.value}'{_suggest(i.value, ids)}"
                )
            )
    return tuple(i.value for i in y.value)


def _case(
    item: Y,
    catalogue: Mapping[str, FeatureSpec],
    ids: set[str],
    base: dict[str, Any],
    *,
    shown: str,
    diags: list[Diagnostic],
) -> Case | None:
    if item.kind != "map":
        diags.append(
            Diagnostic(
                shown, item.line, item.column, "each case is a map with name, features, fires..."
            )
        )
        return None
    f = item.value
    for key, knode in item.keys.items():
        if key not in CASE_FIELDS:
            diags.append(
                Diagnostic(
                    shown,
                    knode.line,
                    knode.column,
                    f"unknown case field '{key}'{_suggest(key, CASE_FIELDS)}",
                )
            )
    name = f["name"].value if "name" in f and isinstance(f["name"].value, str) else None
    if name is None:
        diags.append(Diagnostic(shown, item.line, item.column, "case needs a 'name' (a string)"))
    features = _features(f["features"], catalogue, shown, diags) if "features" in f else {}
    fires = _ids(f.get("fires"), ids, shown, diags)
    not_fires = _ids(f.get("not_fires"), ids, shown, diags)
    only = _ids(f.get("fires_only"), ids, shown, diags)
    if fires is None and not_fires is None and only is None:
        diags.append(
            Diagnostic(
                shown, item.line, item.column, "case needs 'fires', 'not_fires' or 'fires_only'"
            )
        )
    return Case(
        name or "?", shown, item.line, {**base, **features}, fires or (), not_fires or (), only
    )


def run_cases(ruleset: RuleSet, cases: Sequence[Case]) -> list[CaseResult]:
    """Evaluate every case with the rule set's compiled path; a result per case."""
    hits = ruleset.evaluate_batch([c.features for c in cases])
    by_id = {r.id: r for r in ruleset.rules}
    results = []
    for case, case_hits in zip(cases, hits, strict=True):
        fired = tuple(h.rule_id for h in case_hits)
        problems: list[str] = []

        def shown(rid: str, features: dict[str, Any] = case.features) -> str:
            rule = by_id[rid]
            vals = ", ".join(f"{n}={features[n]!r}" for n in rule.features)
            off = "" if rule.enabled else " [rule is disabled]"
            return f"{rid} ({vals}){off}"

        problems += [
            f"expected {shown(r)} to fire; it did not" for r in case.fires if r not in fired
        ]
        problems += [
            f"expected {shown(r)} not to fire; it did" for r in case.not_fires if r in fired
        ]
        if case.fires_only is not None and set(fired) != set(case.fires_only):
            problems.append(
                f"expected exactly [{', '.join(case.fires_only)}] to fire; "
                f"fired [{', '.join(fired)}]"
            )
        results.append(CaseResult(case, fired, tuple(problems)))
    return results


def untested(ruleset: RuleSet, cases: Sequence[Case]) -> list[str]:
    """Enabled rules that no case expects to fire."""
    named = {r for c in cases for r in (*c.fires, *(c.fires_only or ()))}
    return [r.id for r in ruleset.rules if r.enabled and r.id not in named]

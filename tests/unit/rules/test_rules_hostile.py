"""Hostile rule files: each is rejected with a clear message, before anything could run."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudflow.operators.features.catalogue import FeatureSpec
from fraudflow.rules import RuleError, load_rules
from fraudflow.rules import loader as loader_mod
from fraudflow.rules.loader import MAX_LIST_VALUES, MAX_RULE_FILE_BYTES
from tests.unit.rules.conftest import WriteRules


def rule(when: str) -> str:
    return f"rules:\n  - id: evil\n    description: d\n    score: 0.5\n    when: {when}\n"


def rejected(directory: Path, catalogue: dict[str, FeatureSpec]) -> list[str]:
    with pytest.raises(RuleError) as info:
        load_rules(directory, catalogue)
    assert info.value.diagnostics
    return [str(d) for d in info.value.diagnostics]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            "\"__import__('os').system('touch {sentinel}') == 0\"",
            "attribute access ('.') is not allowed",
        ),
        ("\"__import__('os') == 0\"", "name '__import__' is not allowed (no dunder names)"),
        ("'import os'", "syntax error"),
        (
            '"exec(\'import os; os.system(\\"touch {sentinel}\\")\') == 0"',
            "function 'exec' is not allowed",
        ),
        ("\"eval('1') == 1\"", "function 'eval' is not allowed"),
        ("\"open('{sentinel}', 'w') == ''\"", "function 'open' is not allowed"),
        ("\"getattr(amount, 'real') > 1\"", "function 'getattr' is not allowed"),
        ('"amount.real > 1"', "attribute access ('.') is not allowed"),
        (
            '"().__class__.__bases__[0].__subclasses__() == 1"',
            "attribute access ('.') is not allowed",
        ),
        ("\"country[0] == 'N'\"", "indexing and slicing"),
        ('"__builtins__ == 1"', "name '__builtins__' is not allowed"),
        ('"(lambda: 1)() == 1"', "only allowlisted functions can be called"),
        ('"[x for x in country] == 1"', "comprehensions are not allowed"),
        ('"globals() == 1"', "function 'globals' is not allowed"),
        ('"breakpoint() == 1"', "function 'breakpoint' is not allowed"),
    ],
)
def test_code_is_rejected_and_never_runs(
    when: str,
    message: str,
    write_rules: WriteRules,
    catalogue: dict[str, FeatureSpec],
    tmp_path: Path,
) -> None:
    sentinel = tmp_path / "pwned"
    d = write_rules({"a.yaml": rule(when.replace("{sentinel}", str(sentinel)))})
    found = rejected(d, catalogue)
    assert any(message in e for e in found), found
    assert all(e.startswith(f"{d / 'a.yaml'}:5:") for e in found), found
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['touch {sentinel}']\n",
        "rules: !!python/object/apply:os.system ['touch {sentinel}']\n",
        "rules:\n  - id: !!python/name:os.system\n",
        "rules:\n  - !!python/object:builtins.object {}\n",
        "x: !!binary aGVsbG8=\n",
        "x: !custom 1\n",
    ],
)
def test_yaml_tags_are_rejected(
    text: str, write_rules: WriteRules, catalogue: dict[str, FeatureSpec], tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    d = write_rules({"a.yaml": text.replace("{sentinel}", str(sentinel))})
    found = rejected(d, catalogue)
    assert any("is not allowed" in e and "tag" in e for e in found), found
    assert not sentinel.exists()


def test_billion_laughs(write_rules: WriteRules, catalogue: dict[str, FeatureSpec]) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    d = write_rules({"a.yaml": "\n".join(lines) + "\n"})
    assert rejected(d, catalogue) == [
        f"{d / 'a.yaml'}:2:8: YAML: YAML aliases (*name) are not allowed in rule files"
    ]


def test_merge_keys_are_rejected(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules({"a.yaml": "base: &b {score: 0.5}\nrules:\n  - <<: *b\n    id: x\n"})
    assert "aliases (*name) are not allowed" in rejected(d, catalogue)[0]


def test_deep_yaml_nesting(write_rules: WriteRules, catalogue: dict[str, FeatureSpec]) -> None:
    d = write_rules({"a.yaml": "rules: " + "[" * 10_000 + "]" * 10_000 + "\n"})
    assert "YAML is nested too deeply" in rejected(d, catalogue)[0]
    deep_map = "".join(" " * i + f"k{i}:\n" for i in range(200))
    (d / "a.yaml").write_text(deep_map)
    assert "YAML is nested too deeply" in rejected(d, catalogue)[0]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("(" * 10_000 + "amount > 1" + ")" * 10_000, "characters; the limit is 2000"),
        ("not " * 10_000 + "new_device", "characters; the limit is 2000"),
        ("(" * 500 + "amount > 1" + ")" * 500, "too many nested parentheses"),
        ("not " * 400 + "new_device", "nested too deeply"),
        ("- " * 900 + "1 > 0", "nested too deeply"),
        (" + ".join(["amount"] * 200) + " > 1", "nested too deeply"),
    ],
)
def test_deep_expressions(
    when: str, message: str, write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules({"a.yaml": rule(f"'{when}'")})
    found = rejected(d, catalogue)
    assert message in found[0], found


def test_million_element_lists(write_rules: WriteRules, catalogue: dict[str, FeatureSpec]) -> None:
    inline = "lists:\n  big: [" + ", ".join(["1"] * 1_000_000) + "]\n"
    d = write_rules({"a.yaml": inline})
    assert rejected(d, catalogue) == [
        f"{d / 'a.yaml'}:0:0: file is {len(inline)} bytes; the limit is {MAX_RULE_FILE_BYTES}"
    ]
    (d / "a.yaml").write_text("lists:\n  big: {file: big.txt}\n")
    (d / "big.txt").write_text("x\n" * 1_000_000)
    assert rejected(d, catalogue) == [
        f"{d / 'a.yaml'}:2:15: list file 'big.txt' has 1000000 values; "
        f"the limit is {MAX_LIST_VALUES}"
    ]
    (d / "a.yaml").write_text(rule("'country in [" + ", ".join(["1"] * 1_000_000) + "]'"))
    assert "the limit is" in rejected(d, catalogue)[0]


def test_fifty_megabyte_files_are_not_parsed(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_parsing(*_args: object, **_kw: object) -> None:
        raise AssertionError("an oversized file reached the YAML parser")

    monkeypatch.setattr(loader_mod, "load_yaml", no_parsing)
    d = write_rules({"a.yaml": ""})
    with (d / "a.yaml").open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    assert rejected(d, catalogue) == [
        f"{d / 'a.yaml'}:0:0: file is {50 * 1024 * 1024} bytes; the limit is {MAX_RULE_FILE_BYTES}"
    ]


def test_fifty_megabyte_list_file(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules({"a.yaml": "lists:\n  big: {file: big.txt}\n"})
    with (d / "big.txt").open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    assert rejected(d, catalogue) == [
        f"{d / 'a.yaml'}:2:15: list file 'big.txt' is larger than "
        f"{loader_mod.MAX_LIST_FILE_BYTES} bytes"
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"rules: [\n", "YAML: while parsing a flow"),
        (b"rules:\n  - id: a\n   bad indent: 1\n", "YAML:"),
        (b"a: 'unterminated\n", "YAML:"),
        (b"\t- tab\n", "YAML:"),
        (b"a: 1\n---\nb: 2\n", "YAML: expected a single document"),
        (b"\xff\xfe rules", "file is not UTF-8"),
        (b"rules: 5\n", "'rules' must be a sequence"),
        (b"rules: []\n\x00\x01\x02", "a.yaml:2:1: YAML: character #x0000 is not allowed"),
    ],
)
def test_invalid_yaml(
    data: bytes, message: str, write_rules: WriteRules, catalogue: dict[str, FeatureSpec]
) -> None:
    d = write_rules({"a.yaml": ""})
    (d / "a.yaml").write_bytes(data)
    found = rejected(d, catalogue)
    assert any(message in e for e in found), found


def test_symlinked_list_outside_the_directory(
    write_rules: WriteRules, catalogue: dict[str, FeatureSpec], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t\n")
    d = write_rules({"a.yaml": "lists:\n  x: {file: link.txt}\n"})
    (d / "link.txt").symlink_to(secret)
    assert rejected(d, catalogue) == [
        f"{d / 'a.yaml'}:2:13: list file 'link.txt' is outside the rule directory"
    ]

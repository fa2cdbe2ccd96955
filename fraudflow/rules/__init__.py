"""The YAML rule engine: checked, typed expressions over the feature record.

``load_rules`` reads ``DIR/*.yaml`` into a ``RuleSet`` (or raises ``RuleError``
with every problem at ``file:line:column``); ``RuleWatcher`` keeps the active
set fresh for the flow. See docs/rules.md for the rule language.
"""

from fraudflow.records import RuleHit
from fraudflow.rules.errors import Diagnostic, RuleError
from fraudflow.rules.loader import load_rules
from fraudflow.rules.ruleset import Rule, RuleSet
from fraudflow.rules.watcher import RuleWatcher

__all__ = ["Diagnostic", "Rule", "RuleError", "RuleHit", "RuleSet", "RuleWatcher", "load_rules"]

"""The Bytewax step of the alert budget (see :mod:`fraudflow.operators.decide.budget`)."""

from __future__ import annotations

from bytewax.operators import StatefulBatchLogic

from fraudflow.operators.decide.budget import AlertBudget
from fraudflow.records import Decision
from fraudflow.state import snapshot


class BudgetLogic(StatefulBatchLogic[Decision, Decision, bytes | None]):
    """One shard's alert budget (see :mod:`fraudflow.operators.decide.budget`)."""

    def __init__(self, budget: AlertBudget, keep: bool) -> None:
        self.budget = budget
        self.keep = keep

    def on_batch(self, values: list[Decision]) -> tuple[list[Decision], bool]:
        apply = self.budget.apply
        return [apply(d) for d in values], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return snapshot.dump(self.budget) if self.keep else None

"""The Bytewax steps of ingest: raw messages in, Transactions, Labels and DeadLetters out.

The flow maps batches through :meth:`ParseStep.transactions` (the input) and
:meth:`ParseStep.labels` (the labels topic, for the labels store); the parsing
itself is :mod:`~fraudflow.operators.ingest.parse` and :mod:`~fraudflow.operators.ingest.labels`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fraudflow.config.settings import ValidationSettings
from fraudflow.observability.stats import RunStats
from fraudflow.operators.ingest.labels import parse_label
from fraudflow.operators.ingest.parse import parse_message
from fraudflow.records import DeadLetter, Label, Transaction


@dataclass(frozen=True)
class ParseStep:
    """Parse batches of raw messages, one ``clock()`` reading per batch, counting them.

    ``require_key``: a transaction's key must equal its user_id (Kafka).
    """

    settings: ValidationSettings
    stats: RunStats
    clock: Callable[[], float]
    require_key: bool

    def transactions(self, msgs: list[Any]) -> list[Transaction | DeadLetter]:
        """The input's messages, in order, each parsed."""
        now = self.clock()
        vset, require_key = self.settings, self.require_key
        out: list[Transaction | DeadLetter] = []
        for m in msgs:
            res = parse_message(m, vset, now, require_key=require_key)
            if type(res) is Transaction:
                res.raw = m.value  # for a duplicate's dead letter; cleared by the score step
            out.append(res)
        self.stats.received(len(msgs))
        return out

    def labels(self, msgs: list[Any]) -> list[Label | DeadLetter]:
        """The labels topic's messages, in order, each parsed."""
        now = self.clock()
        self.stats.received(len(msgs))
        return [parse_label(m, self.settings, now) for m in msgs]

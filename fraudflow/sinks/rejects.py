"""Decisions a store refuses for their content: dead letters instead of a failed flow.

A store sink that cannot write one decision because of what it holds (a NUL
in a text, text that is not encodable, a value the server rejects) hands it
to :class:`Rejects`, which counts it in ``fraudflow_sink_rejected_total{sink}``
and writes a dead letter (code ``sink_rejected``, step ``sink:<name>``, the
decision's JSON as value) to the flow's dead-letter sink, or logs one ERROR
line when there is none (the Python API without a flow).
"""

from __future__ import annotations

import logging
import time

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fraudflow.records import DeadLetter, Decision
from fraudflow.sinks import metrics

log = logging.getLogger(__name__)
REJECTED_CODE = "sink_rejected"


def rejected_letter(sink: str, decision: Decision, message: str, now: float) -> DeadLetter:
    """The dead letter of a decision ``sink`` refused with ``message`` (pure)."""
    t = decision.txn
    try:
        value = decision.to_json()
    except (TypeError, ValueError):  # not encodable (e.g. a lone surrogate): keep the ids
        value = repr({"alert_id": decision.alert_id, "transaction_id": t.transaction_id}).encode(
            "utf-8", "backslashreplace"
        )
    return DeadLetter(
        code=REJECTED_CODE,
        message=f"{sink} sink refused the decision: {message}",
        value=value,
        key=t.user_id.encode("utf-8", "backslashreplace"),
        topic=t.topic,
        partition=t.partition,
        offset=t.offset,
        dead_at=now,
        step=f"sink:{sink}",
    )


class Rejects:
    """One sink partition's way out for refused decisions."""

    def __init__(
        self,
        sink: str,
        dead_letters: DynamicSink[DeadLetter] | None,
        step_id: str,
        worker_index: int,
        worker_count: int,
    ) -> None:
        self._sink = sink
        self._out: StatelessSinkPartition[DeadLetter] | None = (
            None
            if dead_letters is None
            else dead_letters.build(f"{step_id}_rejected", worker_index, worker_count)
        )

    def reject(self, decision: Decision, message: str) -> None:
        letter = rejected_letter(self._sink, decision, message, time.time())
        metrics.sink_rejected(self._sink)
        if self._out is not None:
            self._out.write_batch([letter])
        else:
            t = decision.txn
            log.error(
                "%s (alert_id %r, source %s/%s/%s; no dead-letter output)",
                letter.message,
                decision.alert_id,
                t.topic,
                t.partition,
                t.offset,
            )

    def close(self) -> None:
        if self._out is not None:
            self._out.close()

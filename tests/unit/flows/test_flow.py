"""The whole dataflow with bytewax's testing source and sink: accounting,
determinism, and independence from the number of workers."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from fraudflow.config.settings import Settings
from fraudflow.flows.detection import FlowIO, build_flow
from fraudflow.records import DeadLetter, Decision

T0 = 1_767_225_600.0


def settings(**kw: Any) -> Settings:
    return Settings().replace(hst_warmup=50, hst_window=50, **kw)


def make_messages(n: int = 600, seed: int = 3) -> list[KafkaSourceMessage[bytes, bytes]]:
    rnd = random.Random(seed)
    msgs = []
    for i in range(n):
        user = f"u{rnd.randrange(20)}"
        rec = {
            "transaction_id": f"t{i}",
            "user_id": user,
            "amount": round(rnd.lognormvariate(3, 0.5), 2),
            "timestamp": int((T0 + 30 * i) * 1000),
            "merchant_id": f"m{rnd.randrange(5)}",
            "country": "DE",
            "device_id": f"d-{user}",
        }
        if i % 97 == 0 and i:
            rec["amount"] = 5000.0  # a spike
        value = orjson.dumps(rec)
        if i % 50 == 7:
            value = b"{broken"
        msgs.append(
            KafkaSourceMessage(key=user.encode(), value=value, topic="tx", partition=0, offset=i)
        )
    # a duplicate of an earlier valid record
    msgs.append(
        KafkaSourceMessage(key=msgs[3].key, value=msgs[3].value, topic="tx", partition=0, offset=n)
    )
    return msgs


def run(
    msgs: Sequence[Any], s: Settings, workers: int = 1, **io_fields: Any
) -> tuple[list[Decision], list[Decision], list[DeadLetter], FlowIO]:
    """The flow over ``msgs`` with testing sinks; ``io_fields`` override FlowIO fields."""
    alerts: list[Decision] = []
    decisions: list[Decision] = []
    dead: list[DeadLetter] = []
    fields: dict[str, Any] = {"clock": lambda: T0 + 86400, **io_fields}
    io = FlowIO(
        source=TestingSource(msgs, batch_size=64),
        alerts=TestingSink(alerts),
        dead_letters=TestingSink(dead),
        decisions=[("all", TestingSink(decisions))],
        **fields,
    )
    flow = build_flow(s, io)
    if workers == 1:
        run_main(flow, epoch_interval=timedelta(seconds=1))
    else:
        cluster_main(
            flow, [], 0, worker_count_per_proc=workers, epoch_interval=timedelta(seconds=1)
        )
    return alerts, decisions, dead, io


def test_every_record_is_accounted_for() -> None:
    msgs = make_messages()
    alerts, decisions, dead, io = run(msgs, settings())
    snap = io.stats.snapshot()
    assert snap["received"] == len(msgs)
    assert len(decisions) + len(dead) == len(msgs)
    assert snap["valid"] == len(decisions)
    assert snap["dead_lettered"] == len(dead)
    assert sorted(d.code for d in dead).count("bad_json") == 12
    assert [d.code for d in dead if d.code != "bad_json"] == ["duplicate"]
    assert {a.alert_id for a in alerts} <= {d.alert_id for d in decisions}
    assert all(a.tier in ("review", "block") for a in alerts)


def test_spikes_raise_alerts_with_reasons() -> None:
    alerts, _, _, _ = run(make_messages(), settings())
    spiked = {a.txn.transaction_id for a in alerts if a.txn.amount == 5000.0}
    assert len(spiked) >= 4
    a = next(a for a in alerts if a.txn.amount == 5000.0)
    assert a.reasons
    assert a.reasons[0].contribution > 0
    out = orjson.loads(a.to_json())
    assert {
        "alert_id",
        "transaction_id",
        "score",
        "tier",
        "reasons",
        "rules_version",
        "model_version",
    } <= set(out)


def test_same_input_gives_same_alert_ids_and_scores() -> None:
    msgs = make_messages()
    a1 = {d.alert_id: d.score for d in run(msgs, settings())[1]}
    a2 = {d.alert_id: d.score for d in run(msgs, settings())[1]}
    assert a1 == a2


def test_scores_do_not_depend_on_worker_count() -> None:
    msgs = make_messages()
    one = {d.alert_id: round(d.score, 9) for d in run(msgs, settings())[1]}
    two = {d.alert_id: round(d.score, 9) for d in run(msgs, settings(), workers=2)[1]}
    assert one == two


def test_rules_version_is_on_every_decision(tmp_path: Path) -> None:
    _, decisions, _, io = run(make_messages(100), settings())
    versions = {d.rules_version for d in decisions}
    assert versions == {io.stats.snapshot()["rules_version"]}

"""The dataflow with feedback on: labels among transactions (a replay) or on their own
input, entity risk reaching later decisions, accounting, determinism, the alert budget."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from statistics import mean
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSource

from fraudflow.config.settings import Settings
from fraudflow.records import DeadLetter, Decision, iso
from tests.unit.flows.test_flow import run as run_flow

T0 = 1_767_225_600.0
CLOCK = T0 + 86400
Msg = KafkaSourceMessage[bytes | None, bytes]
FRAUD: list[int | str] = [1, "fraud"]
LEGIT: list[int | str] = [0, "legit"]


def settings(feedback: bool = True, **kw: Any) -> Settings:
    fb: dict[str, Any] = {"supervised_warmup": 5} if feedback else {}
    return Settings().replace(hst_warmup=50, hst_window=50, feedback=feedback, **fb, **kw)


def txn_value(i: int, rnd: random.Random, merchant: str) -> bytes:
    user = f"u{rnd.randrange(20)}"
    rec = {
        "transaction_id": f"t{i}",
        "user_id": user,
        "amount": round(rnd.lognormvariate(3, 0.5), 2),
        "timestamp": int((T0 + 30 * i) * 1000),
        "merchant_id": merchant,
        "country": "DE",
        "device_id": f"d-{user}",
    }
    return orjson.dumps(rec)


def label_value(tid: str, y: int | str, reported_at: float) -> bytes:
    return orjson.dumps({"transaction_id": tid, "label": y, "reported_at": iso(reported_at)})


@dataclass
class Stream:
    transactions: list[bytes]
    labels: list[tuple[int, bytes]]  # (transactions seen before it, label value)
    bad_merchant: set[str]  # transaction ids at the compromised merchant


def make_stream(n: int = 600, seed: int = 3) -> Stream:
    """Transactions at six merchants; every one at ``mbad`` is confirmed fraud a few
    transactions later, a third of the others confirmed legit."""
    rnd = random.Random(seed)
    txns: list[bytes] = []
    labels: list[tuple[int, bytes]] = []
    bad: set[str] = set()
    for i in range(n):
        merchant = "mbad" if rnd.random() < 1 / 6 else f"m{rnd.randrange(5)}"
        txns.append(txn_value(i, rnd, merchant))
        when = min(i + 1 + rnd.randrange(5), n)
        reported = T0 + 30 * i + 60
        if merchant == "mbad":
            bad.add(f"t{i}")
            labels.append((when, label_value(f"t{i}", rnd.choice(FRAUD), reported)))
        elif rnd.random() < 1 / 3:
            labels.append((when, label_value(f"t{i}", rnd.choice(LEGIT), reported)))
    labels.append((n // 2, label_value("never-scored", 1, T0 + 3600)))
    labels.append((n // 2, b'{"transaction_id": "t1", "label": 7, "reported_at": 1}'))
    labels.append((n - 1, label_value("t2", 0, T0 + 7200)))  # a second verdict
    labels.sort(key=lambda x: x[0])
    return Stream(txns, labels, bad)


def interleaved(s: Stream) -> list[Msg]:
    """One partition: each label after the transactions seen before it."""
    values: list[tuple[bytes | None, bytes]] = []
    j = 0
    for i, v in enumerate(s.transactions):
        while j < len(s.labels) and s.labels[j][0] <= i:
            values.append((None, s.labels[j][1]))
            j += 1
        values.append((orjson.loads(v)["user_id"].encode(), v))
    values += [(None, lab) for _, lab in s.labels[j:]]
    return [
        KafkaSourceMessage(key=k, value=v, topic="tx", partition=0, offset=o)
        for o, (k, v) in enumerate(values)
    ]


def transactions_only(s: Stream) -> list[Msg]:
    return [
        KafkaSourceMessage(
            key=orjson.loads(v)["user_id"].encode(), value=v, topic="tx", partition=0, offset=o
        )
        for o, v in enumerate(s.transactions)
    ]


def labels_only(s: Stream) -> list[Msg]:
    return [
        KafkaSourceMessage(key=b"k", value=v, topic="labels", partition=0, offset=o)
        for o, (_, v) in enumerate(s.labels)
    ]


@dataclass
class Run:
    decisions: list[Decision]
    alerts: list[Decision]
    dead: list[DeadLetter]
    stats: dict[str, Any]


def run(
    msgs: Sequence[Msg],
    s: Settings,
    *,
    labels: Sequence[Msg] | None = None,
    interleaved_labels: bool = True,
    workers: int = 1,
) -> Run:
    alerts, decisions, dead, io = run_flow(
        msgs,
        s,
        workers,
        clock=lambda: CLOCK,
        labels=None if labels is None else TestingSource(labels, batch_size=16),
        interleaved_labels=interleaved_labels,
    )
    decisions.sort(key=lambda d: d.txn.offset)
    return Run(decisions, alerts, dead, io.stats.snapshot())


def test_labels_reach_later_transactions_at_the_same_merchant() -> None:
    s = make_stream()
    r = run(interleaved(s), settings())
    assert len(r.decisions) == len(s.transactions)
    bad = [d for d in r.decisions if d.txn.transaction_id in s.bad_merchant]
    good = [d for d in r.decisions if d.txn.transaction_id not in s.bad_merchant]
    # the compromised merchant's first transaction is scored before any label
    assert bad[0].features["merchant_frauds_28d"] == 0
    assert "ENTITY_RISK" not in {x.code for x in bad[0].reasons}
    late_bad = bad[len(bad) // 2 :]
    late_good = good[len(good) // 2 :]
    rate = "merchant_fraud_rate_28d"
    assert min(d.features[rate] for d in late_bad) > 0.4
    assert mean(d.features[rate] for d in late_bad) > 4 * mean(d.features[rate] for d in late_good)
    assert max(d.features[rate] for d in late_good) < min(d.features[rate] for d in late_bad)
    assert all(d.features["merchant_frauds_28d"] >= 10 for d in late_bad)
    with_reason = [d for d in late_bad if "ENTITY_RISK" in {x.code for x in d.reasons}]
    assert len(with_reason) == len(late_bad)
    assert all(d.detector_scores["entity"] > 0.3 for d in late_bad)
    # they are raised to alerts; the same transactions without feedback mostly are not
    assert sum(d.is_alert for d in late_bad) >= 0.9 * len(late_bad)
    off = run(transactions_only(s), settings(feedback=False))
    off_bad = [d for d in off.decisions if d.txn.transaction_id in s.bad_merchant]
    assert sum(d.is_alert for d in off_bad[len(bad) // 2 :]) < 0.5 * len(late_bad)


def test_supervised_model_joins_after_warmup() -> None:
    s = make_stream()
    r = run(interleaved(s), settings())
    sup = [d.detector_scores["supervised"] for d in r.decisions]
    assert sup[0] == 0.0
    assert all(0.0 <= x <= 1.0 for x in sup)
    late = [
        d.detector_scores["supervised"]
        for d in r.decisions[len(r.decisions) // 2 :]
        if d.txn.transaction_id in s.bad_merchant
    ]
    assert mean(late) > 0.5


def test_every_record_and_label_is_accounted_for() -> None:
    s = make_stream()
    msgs = interleaved(s)
    r = run(msgs, settings())
    st = r.stats
    assert st["received"] == len(msgs)
    assert st["received"] == st["valid"] + st["labels"] + st["dead_lettered"]
    assert st["valid"] == len(r.decisions) == len(s.transactions)
    assert st["dead_lettered"] == len(r.dead)
    assert st["labels"] == len(s.labels) - 2
    assert st["label_frauds"] == len(s.bad_merchant)
    by_code = {(d.code, d.step): orjson.loads(d.value or b"null") for d in r.dead}
    assert set(by_code) == {("label_unknown_transaction", "feedback"), ("bad_value", "validate")}
    assert by_code["label_unknown_transaction", "feedback"]["transaction_id"] == "never-scored"
    unknown = next(d for d in r.dead if d.code == "label_unknown_transaction")
    assert (unknown.topic, unknown.partition) == ("tx", 0)
    assert unknown.offset == next(
        m.offset for m in msgs if m.value is not None and b"never-scored" in m.value
    )
    assert st["dead_by_code"] == {"label_unknown_transaction": 1, "bad_value": 1}


def test_two_runs_give_identical_decisions() -> None:
    msgs = interleaved(make_stream())

    def key(r: Run) -> list[tuple[str, float, str, dict[str, float]]]:
        return [(d.alert_id, d.score, d.tier, d.detector_scores) for d in r.decisions]

    first = key(run(msgs, settings()))
    assert first == key(run(msgs, settings()))
    assert first == key(run(msgs, settings(), workers=2))


def test_feedback_off_adds_no_detectors() -> None:
    s = make_stream(200)
    off = run(transactions_only(s), settings(feedback=False))
    assert off.decisions
    for d in off.decisions:
        assert not {"entity", "supervised"} & set(d.detector_scores)
        assert not {"entity_risk", "supervised_score", "merchant_fraud_rate_28d"} & set(d.features)
    on = run(interleaved(s), settings())
    assert all({"entity", "supervised"} <= set(d.detector_scores) for d in on.decisions)


def test_feedback_off_ignores_a_labels_source() -> None:
    s = make_stream(200)
    r = run(transactions_only(s), settings(feedback=False), labels=labels_only(s))
    assert r.stats["received"] == len(s.transactions)
    assert r.stats["labels"] == 0
    assert not r.dead


def test_labels_from_their_own_input_are_accounted_for() -> None:
    s = make_stream()
    txns, labels = transactions_only(s), labels_only(s)
    r = run(txns, settings(), labels=labels, interleaved_labels=False)
    st = r.stats
    assert st["received"] == len(txns) + len(labels)
    assert st["received"] == st["valid"] + st["labels"] + st["dead_lettered"]
    assert st["valid"] == len(r.decisions) == len(txns)
    from_labels = [d for d in r.dead if d.topic == "labels"]
    assert len(from_labels) == len(r.dead)
    assert st["labels"] + len(from_labels) == len(labels)
    assert {d.code for d in from_labels} <= {
        "label_unknown_transaction",
        "bad_value",
    }
    assert {d.code for d in from_labels if d.step == "feedback"} <= {"label_unknown_transaction"}
    assert sum(d.code == "bad_value" for d in from_labels) == 1


def labels_first(s: Stream) -> list[Msg]:
    """One partition, every label ahead of every transaction (a catch-up read)."""
    values = [(None, v) for _, v in s.labels]
    values += [(orjson.loads(v)["user_id"].encode(), v) for v in s.transactions]
    return [
        KafkaSourceMessage(key=k, value=v, topic="tx", partition=0, offset=o)
        for o, (k, v) in enumerate(values)
    ]


def test_labels_read_ahead_wait_for_their_transactions() -> None:
    s = make_stream()
    msgs = labels_first(s)
    before = run(msgs, settings())  # no horizon: dead-lettered at once, as before
    assert before.stats["labels"] == 0
    r = run(msgs, settings(early_label_horizon=timedelta(days=1)))
    st = r.stats
    assert st["received"] == st["valid"] + st["labels"] + st["dead_lettered"]
    assert st["labels"] == len(s.labels) - 2  # all but the never-scored one and the bad one
    assert st["dead_by_code"] == {"label_unmatched": 1, "bad_value": 1}
    gone = next(d for d in r.dead if d.code == "label_unmatched")
    assert orjson.loads(gone.value or b"null")["transaction_id"] == "never-scored"
    # each applied right after its transaction was scored: no later than in the interleaved
    # stream, where a label follows its transaction by a while
    inter = run(interleaved(s), settings())
    frauds = "merchant_frauds_28d"
    ahead = sum(d.features[frauds] for d in r.decisions)
    assert ahead >= sum(d.features[frauds] for d in inter.decisions) > 0

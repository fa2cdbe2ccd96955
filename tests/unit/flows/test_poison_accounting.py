"""Issue 13: messages the audit found poisonous are dead-lettered, not fatal, and the
accounting still holds: received = valid + dead-lettered."""

from __future__ import annotations

from collections import Counter

from bytewax.connectors.kafka import KafkaSourceMessage

from tests.unit.flows.test_flow import make_messages, run, settings

POISON = [
    (b'"' * 600_000, b"u1", "oversize"),
    (bytes(range(256)) * 3200, b"u1", "oversize"),
    (b'{"transaction_id": "p1", "user_id": "u1"}', b"k" * 1_000_000, "missing_field"),
    (b"x" * 10_000_000, b"u1", "oversize"),
    (
        b'{"transaction_id":"p2","user_id":"u\\u00001","amount":1,"timestamp":1767225600000}',
        b"u\x001",
        "bad_value",
    ),
    (
        b'{"transaction_id":"p3","user_id":"u1","amount":-5,"amount":5,"timestamp":1767225600000}',
        b"u1",
        "duplicate_key",
    ),
]


def test_poison_is_dead_lettered_and_every_record_accounted_for() -> None:
    msgs = make_messages(300)
    n = len(msgs)
    msgs += [
        KafkaSourceMessage(key=k, value=v, topic="tx", partition=0, offset=n + i)
        for i, (v, k, _code) in enumerate(POISON)
    ]
    _alerts, decisions, dead, io = run(msgs, settings())
    snap = io.stats.snapshot()
    assert snap["received"] == len(msgs)
    assert snap["valid"] == len(decisions)
    assert snap["dead_lettered"] == len(dead)
    assert len(decisions) + len(dead) == len(msgs)
    poison = {d.offset: d.code for d in dead if d.offset >= n}
    assert poison == {n + i: code for i, (_v, _k, code) in enumerate(POISON)}
    assert not {d.txn.transaction_id for d in decisions} & {"p1", "p2", "p3"}
    assert Counter(snap["dead_by_code"])["duplicate_key"] == 1
    assert Counter(snap["dead_by_code"])["oversize"] == 3

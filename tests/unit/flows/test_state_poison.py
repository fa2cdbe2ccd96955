"""Per-user state against poison input, through the whole flow (issue 13).

Extreme amounts, a future-dated record, resends after many events or of a
late record, and one transaction_id sent for two users.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage

from fraudflow.config.settings import Settings
from fraudflow.records import Decision, Transaction
from fraudflow.state.shard import ShardState
from tests.unit.flows.test_flow import run

T0 = 1_767_225_600.0
CLOCK = T0 + 7200  # the live flow's clock in these tests
MAX = sys.float_info.max
Msg = KafkaSourceMessage[bytes, bytes]


def settings(**kw: Any) -> Settings:
    return Settings().replace(hst_warmup=20, hst_window=20, **kw)


def msg(offset: int, tid: str, user: str, ts: float, amount: float = 20.0, **kw: Any) -> Msg:
    rec = {
        "transaction_id": tid,
        "user_id": user,
        "amount": amount,
        "timestamp": int(ts * 1000),
        "merchant_id": kw.pop("merchant_id", "m1"),
        "country": "DE",
        "device_id": f"d-{user}",
        **kw,
    }
    return KafkaSourceMessage(
        key=user.encode(), value=orjson.dumps(rec), topic="tx", partition=0, offset=offset
    )


def numbered(specs: list[tuple[str, str, float, float]]) -> list[Msg]:
    return [msg(i, tid, user, ts, amount) for i, (tid, user, ts, amount) in enumerate(specs)]


def background(n: int, start: float = T0) -> list[tuple[str, str, float, float]]:
    """Ordinary traffic of ten users, 10 s apart."""
    return [(f"b{i}", f"bg{i % 10}", start + 10 * i, 20.0 + i % 7) for i in range(n)]


def test_extreme_amounts_flow_through_to_finite_decisions() -> None:
    amounts = (0.0, 5e-324, 2.2250738585072014e-308, 1e308, MAX)
    specs = background(100)
    specs += [(f"big{i}", "whale", T0 + 1000 + i, 1e308) for i in range(3)]  # the crash
    specs += [(f"max{i}", "whale", T0 + 1010 + i / 10, MAX) for i in range(300)]
    specs += [(f"same{i}", "same", T0 + 2000, amounts[i % 5]) for i in range(40)]  # one timestamp
    specs += [(f"ooo{i}", "ooo", T0 + 3000 - 17 * (i % 7) + i, amounts[i % 5]) for i in range(80)]
    msgs = numbered(specs)
    _, decisions, dead, _ = run(msgs, settings(), clock=lambda: CLOCK)
    assert not dead
    assert len(decisions) == len(msgs)
    for d in decisions:
        assert 0.0 <= d.score <= 1.0
        assert all(0.0 <= v <= 1.0 for v in d.detector_scores.values()), d.detector_scores
        assert all(abs(v) <= MAX for v in d.features.values() if isinstance(v, float)), (
            d.txn.transaction_id
        )
        orjson.loads(d.to_json())
    whale = [d for d in decisions if d.txn.user_id == "whale"]
    assert whale[-1].features["sum_1m"] == MAX
    assert whale[-1].features["count_1m"] >= 300


def burst(user: str, at: float) -> list[Msg]:
    """Card testing: nine charges of 1.00 five seconds apart (6 reach count_1m >= 4)."""
    return [msg(0, f"ct{i}", user, at + 5 * i, 1.0, merchant_id=f"w{i}") for i in range(9)]


def renumber(msgs: list[Msg]) -> list[Msg]:
    """The messages at offsets 0, 1, 2... of one partition, in this order."""
    return [
        KafkaSourceMessage(key=m.key, value=m.value, topic="tx", partition=0, offset=i)
        for i, m in enumerate(msgs)
    ]


def card_testing_alerts(decisions: list[Decision], user: str) -> int:
    return sum(
        1
        for d in decisions
        if d.txn.user_id == user
        and d.is_alert
        and any(h.rule_id == "card_testing" for h in d.rule_hits)
    )


@pytest.mark.parametrize("event_clock", [False, True], ids=["live", "replay"])
def test_a_future_dated_record_does_not_blind_the_user(event_clock: bool) -> None:
    # history, then one record 12 h ahead (validation accepts up to 24 h), then a burst
    history = [msg(0, f"h{i}", "victim", T0 + 600 * i, 30.0) for i in range(6)]
    bg = numbered(background(100))
    future = [msg(0, "future", "victim", T0 + 3600 + 12 * 3600, 30.0)]
    now = T0 + 3600
    msgs = renumber(history + bg[:50] + future + bg[50:] + burst("victim", now))
    _, decisions, dead, _ = run(msgs, settings(), clock=lambda: now + 60, event_clock=event_clock)
    assert not dead
    by_id = {d.txn.transaction_id: d for d in decisions}
    assert "future" in by_id  # scored (and learned from), without moving the user's clock
    assert card_testing_alerts(decisions, "victim") == 6
    assert not any(by_id[f"ct{i}"].late for i in range(9))
    # the same burst without the future-dated record alerts the same
    _, plain, _, _ = run(
        renumber(history + bg + burst("victim", now)), settings(), clock=lambda: now + 60
    )
    assert card_testing_alerts(plain, "victim") == 6


def test_a_replay_catches_up_after_a_gap_in_traffic() -> None:
    # two hours without records, then ordinary traffic again: the replay's clock catches
    # up with it and nothing is held back, so it scores exactly as a live run does
    specs = background(60) + background(60, start=T0 + 600 + 7200)
    specs += [("sparse0", "lone", T0 + 20000, 20.0), ("sparse1", "lone", T0 + 40000, 25.0)]
    msgs = numbered(specs)
    _, replayed, _, _ = run(msgs, settings(), event_clock=True)
    _, live, _, _ = run(msgs, settings(), clock=lambda: T0 + 86400)
    assert not any(d.late for d in replayed)
    assert [d.to_dict() | {"processed_at": 0} for d in replayed] == [
        d.to_dict() | {"processed_at": 0} for d in live
    ]


def test_a_resend_after_1000_events_of_the_user_is_a_duplicate() -> None:
    specs = [(f"t{i}", "busy", T0 + 30 * i, 10.0 + i % 3) for i in range(1000)]  # 8.3 h
    msgs = numbered(specs)
    resend = KafkaSourceMessage(
        key=msgs[0].key, value=msgs[0].value, topic="tx", partition=0, offset=1000
    )
    _, decisions, dead, _ = run([*msgs, resend], settings(), clock=lambda: T0 + 86400)
    assert len(decisions) == 1000
    assert [d.code for d in dead] == ["duplicate"]
    assert dead[0].value == msgs[0].value  # the original bytes, as docs/dead-letters.md says
    assert dead[0].offset == 1000
    assert dead[0].to_dict()["value"] == msgs[0].value.decode()  # type: ignore[union-attr]


def test_a_resend_of_a_late_record_is_a_duplicate() -> None:
    specs = [(f"t{i}", "u1", T0 + 60 * i, 20.0) for i in range(20)]
    specs.append(("old", "u1", T0 - 3600, 20.0))  # an hour behind: late, not learned from
    msgs = numbered(specs)
    resend = KafkaSourceMessage(key=b"u1", value=msgs[-1].value, topic="tx", partition=0, offset=99)
    again = KafkaSourceMessage(key=b"u1", value=msgs[-1].value, topic="tx", partition=0, offset=100)
    _, decisions, dead, _ = run([*msgs, resend, again], settings(), clock=lambda: T0 + 86400)
    assert len(decisions) == 21
    assert next(d for d in decisions if d.txn.transaction_id == "old").late
    assert [(d.code, d.offset) for d in dead] == [("duplicate", 99), ("duplicate", 100)]
    assert all(d.value == msgs[-1].value for d in dead)


def test_the_same_transaction_id_for_two_users_gives_two_decisions() -> None:
    msgs = numbered([*background(40), ("shared", "alice", T0 + 500, 20.0)])
    msgs.append(msg(41, "shared", "bob", T0 + 501, 20.0))
    _, decisions, dead, _ = run(msgs, settings(), clock=lambda: T0 + 86400)
    assert not dead
    shared = [d for d in decisions if d.txn.transaction_id == "shared"]
    assert sorted(d.txn.user_id for d in shared) == ["alice", "bob"]
    assert shared[0].alert_id != shared[1].alert_id


def test_the_shard_clock_survives_a_snapshot_and_old_snapshots_load() -> None:
    st = ShardState()
    txn = Transaction("t", "u", 1.0, T0, "USD")
    assert st.event_clock(txn, 300.0) == T0
    back = pickle.loads(pickle.dumps(st))
    assert back.clock == T0
    old = ShardState.__new__(ShardState)
    old.__setstate__((None, {"users": {}, "seen": {}, "model": None}))  # before the clock
    assert old.clock == float("-inf")
    assert old.event_clock(txn, 300.0) == T0
    # one record far ahead moves the shard's clock by at most max_event_ahead
    assert st.event_clock(Transaction("f", "u", 1.0, T0 + 86400, "USD"), 300.0) == T0
    assert st.clock == T0 + 300

"""One transaction_id sent for two users: two decisions, two alert ids, two rows.

Before alert ids named the user, the second row collided with the first on
the decisions table's key and ``ON CONFLICT DO NOTHING`` dropped it silently.
"""

from __future__ import annotations

import orjson
import psycopg
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from fraudflow.config.settings import Settings
from fraudflow.flows.detection import FlowIO, build_flow
from fraudflow.flows.wiring import store_sinks
from fraudflow.records import DeadLetter, Decision

pytestmark = pytest.mark.integration
T0 = 1_706_745_600.0


def message(offset: int, tid: str, user: str, ts: float) -> KafkaSourceMessage[bytes, bytes]:
    rec = {"transaction_id": tid, "user_id": user, "amount": 20.0, "timestamp": int(ts * 1000)}
    return KafkaSourceMessage(
        key=user.encode(), value=orjson.dumps(rec), topic="tx", partition=0, offset=offset
    )


def test_the_same_transaction_id_for_two_users_lands_twice(database: str) -> None:
    msgs = [message(i, f"t{i}", f"u{i % 3}", T0 + 60 * i) for i in range(10)]
    # the same id and the same event time for two users (a collision in a shared id space)
    msgs += [message(10, "shared", "alice", T0 + 900), message(11, "shared", "bob", T0 + 900)]
    s = Settings().replace(postgres_dsn=database)
    decisions: list[Decision] = []
    dead: list[DeadLetter] = []
    io = FlowIO(
        source=TestingSource(msgs),
        alerts=TestingSink([]),
        dead_letters=TestingSink(dead),
        decisions=[*store_sinks(s), ("all", TestingSink(decisions))],
    )
    run_main(build_flow(s, io))
    assert not dead
    shared = {d.txn.user_id: d.alert_id for d in decisions if d.txn.transaction_id == "shared"}
    assert sorted(shared) == ["alice", "bob"]
    assert shared["alice"] != shared["bob"]
    with psycopg.connect(database) as c:
        rows = c.execute(
            "select user_id, alert_id from decisions where transaction_id = 'shared'"
            " order by user_id"
        ).fetchall()
        total = c.execute("select count(*) from decisions").fetchone()
    assert rows == [("alice", shared["alice"]), ("bob", shared["bob"])]
    assert total == (12,)

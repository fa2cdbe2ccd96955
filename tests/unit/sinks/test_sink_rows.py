"""Pure parts of the sinks: rows, months, partitions, profiles, per-user latest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fraudflow.sinks.columns import DECISION_COLUMNS, PRIMARY_KEY, WRITE_COLUMNS, decision_row
from fraudflow.sinks.postgres import months_of
from fraudflow.sinks.redis_profiles import latest_per_user, profile_fields
from fraudflow.sinks.schema import COLUMNS, month_bounds, month_start, partition_name
from tests.unit.sinks.factory import make_decision, ts


def test_the_table_and_the_sink_share_one_column_definition() -> None:
    lines = [line.strip() for line in COLUMNS.strip().splitlines()]
    assert [line.split()[0] for line in lines[:-1]] == [c.name for c in DECISION_COLUMNS]
    assert lines[-1] == f"primary key ({', '.join(PRIMARY_KEY)})"
    assert [c for c, _ in WRITE_COLUMNS] == [c.name for c in DECISION_COLUMNS if c.copy]
    assert all((c.copy is None) == (c.value is None) for c in DECISION_COLUMNS)
    assert "written_at" not in dict(WRITE_COLUMNS)  # the server fills it


def test_decision_row_follows_the_write_columns() -> None:
    d = make_decision(3, tier="block", rules=("R1", "R2"))
    row = dict(zip([c for c, _ in WRITE_COLUMNS], decision_row(d), strict=True))
    assert row["alert_id"] == d.alert_id
    assert row["event_time"] == datetime(2024, 3, 10, 12, tzinfo=UTC)
    assert row["processed_at"].timestamp() == pytest.approx(d.txn.ts + 0.25)
    assert row["rule_ids"] == ["R1", "R2"]
    assert row["tier"] == "block"
    assert row["reasons"] == [r.to_dict() for r in d.reasons]
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (
        "transactions",
        0,
        3,
    )
    # everything the alert JSON carries about the transaction is stored
    alert = d.to_dict()
    for key in (
        "transaction_id",
        "user_id",
        "amount",
        "currency",
        "merchant_id",
        "country",
        "tier",
        "rules_version",
        "model_version",
        "late",
    ):
        assert row[key] == alert[key], key


def test_a_decision_from_a_file_has_no_source_position() -> None:
    d = make_decision(1)
    d.txn.topic, d.txn.partition, d.txn.offset = "", -1, -1
    row = decision_row(d)
    assert row[-3:] == (None, None, None)


@pytest.mark.parametrize(
    ("when", "month", "name", "lo", "hi"),
    [
        ("2024-03-10T12:00:00", (2024, 3), "alerts_p2024_03", "2024-03-01", "2024-04-01"),
        ("2024-12-31T23:59:59.999", (2024, 12), "alerts_p2024_12", "2024-12-01", "2025-01-01"),
        ("2025-01-01T00:00:00", (2025, 1), "alerts_p2025_01", "2025-01-01", "2025-02-01"),
        ("2024-02-29T10:00:00+05:00", (2024, 2), "alerts_p2024_02", "2024-02-01", "2024-03-01"),
        ("2024-03-01T01:00:00+05:00", (2024, 2), "alerts_p2024_02", "2024-02-01", "2024-03-01"),
    ],
)
def test_months_and_partitions(
    when: str, month: tuple[int, int], name: str, lo: str, hi: str
) -> None:
    assert month_start(ts(when)) == month
    assert partition_name("alerts", *month) == name
    start, end = month_bounds(*month)
    assert (start.date().isoformat(), end.date().isoformat()) == (lo, hi)
    assert start.timestamp() <= ts(when) < end.timestamp()


def test_months_of_a_batch() -> None:
    batch = [
        make_decision(i, at=a)
        for i, a in enumerate(["2023-12-31T23:00:00", "2024-01-01T00:00:00", "2024-01-15T00:00:00"])
    ]
    assert months_of(batch) == {(2023, 12), (2024, 1)}


def test_latest_per_user_prefers_newest_event_then_higher_id() -> None:
    old = make_decision(1, user="a", at="2024-03-10T12:00:00")
    new = make_decision(2, user="a", at="2024-03-10T12:05:00")
    other = make_decision(3, user="b", at="2024-03-10T11:00:00")
    assert latest_per_user([new, other, old]) == {"a": new, "b": other}
    assert latest_per_user([old, new, other]) == {"a": new, "b": other}
    # same event time: the larger alert_id wins whatever the order
    x = make_decision(4, user="c", at="2024-03-10T12:00:00")
    y = make_decision(5, user="c", at="2024-03-10T12:00:00")
    win = max(x, y, key=lambda d: d.alert_id)
    assert latest_per_user([x, y])["c"] is win
    assert latest_per_user([y, x])["c"] is win


def test_profile_fields_of_an_alert_and_an_approval() -> None:
    alert = make_decision(1, tier="block")
    f = profile_fields(alert)
    assert f["last_tier"] == "block"
    assert f["last_alert_id"] == alert.alert_id
    assert f["last_event_ts"] == repr(alert.txn.ts)
    assert float(f["last_event_ts"]) == alert.txn.ts
    assert f["last_event_time"] == "2024-03-10T12:00:00.000Z"
    assert (f["count_1h"], f["sum_24h"], f["amount_z"]) == ("3", "99.25", "2.5")
    assert "merchant_category" not in f
    assert all(isinstance(v, str) for v in f.values())
    ok = profile_fields(make_decision(2, tier="approve"))
    assert ok["last_tier"] == "approve"
    assert "last_alert_id" not in ok  # the previous alert stays in the hash

"""The console's API on real PostgreSQL, Redis and broker: queue, alert, verdicts, users, rules."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import orjson
import psycopg
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi.testclient import TestClient

from fraudflow.config.settings import ValidationSettings
from fraudflow.console.app import create_app
from fraudflow.operators.ingest.labels import parse_label
from tests.integration.console.console_support import Console, alert_row, auth, insert, token

pytestmark = pytest.mark.integration


def pages(c: Console, params: dict[str, Any], *, between: Any = None) -> list[dict[str, Any]]:
    """Every alert of the queue, page by page (``between`` runs after each page)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        r = c.client.get("/api/alerts", params=q, headers=auth("vic", ("viewer",)))
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["alerts"]
        if between is not None:
            between(len(out))
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_queue_sorted_by_score_and_paginated(console: Console) -> None:
    got = pages(console, {"limit": 25})
    want = sorted(console.rows, key=lambda r: (r["score"], r["alert_id"]), reverse=True)
    assert [a["alert_id"] for a in got] == [r["alert_id"] for r in want]
    by_time = pages(console, {"limit": 7, "sort": "time"})
    assert [a["alert_id"] for a in by_time] == [f"a{i:06d}" for i in reversed(range(120))]


def test_pagination_stays_correct_while_alerts_arrive(console: Console) -> None:
    """Alerts inserted between pages never duplicate or hide an alert that was there."""
    rng = random.Random(3)
    added: list[dict[str, Any]] = []

    def arrive(n: int) -> None:
        new = [alert_row(1000 + len(added) + k, rng) for k in range(5)]
        added.extend(new)
        insert(console.dsn, new, ("alerts",))

    got = pages(console, {"limit": 20}, between=arrive)
    ids = [a["alert_id"] for a in got]
    assert len(ids) == len(set(ids))  # no duplicates
    assert {r["alert_id"] for r in console.rows} <= set(ids)  # nothing that was there is lost
    scores = [(a["score"], a["alert_id"]) for a in got]
    assert scores == sorted(scores, reverse=True)  # one consistent order across pages
    # a newcomer is returned when its place is after the page being read
    assert set(ids) - {r["alert_id"] for r in console.rows} <= {r["alert_id"] for r in added}


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"tier": "block"}, lambda r: r["tier"] == "block"),
        ({"min_score": 0.9}, lambda r: r["score"] >= 0.9),
        ({"user_id": "u003"}, lambda r: r["user_id"] == "u003"),
        ({"rule": "velocity_burst"}, lambda r: "velocity_burst" in r["rule_ids"]),
        (
            {"from": "2026-11-01T00:30:00Z", "to": "2026-11-01T01:00:00+00:00"},
            lambda r: 30 <= int(r["alert_id"][1:]) < 60,
        ),
        (
            {"tier": "review", "user_id": "u001", "min_score": 0.6},
            lambda r: r["tier"] == "review" and r["user_id"] == "u001" and r["score"] >= 0.6,
        ),
    ],
)
def test_filters(console: Console, params: dict[str, Any], keep: Any) -> None:
    got = {a["alert_id"] for a in pages(console, {**params, "limit": 50})}
    assert got == {r["alert_id"] for r in console.rows if keep(r)}
    assert got  # the table above picks filters that match something


def test_alert_detail_has_everything_an_analyst_needs(console: Console) -> None:
    r = console.client.get("/api/alerts/a000010", headers=auth("vic", ("viewer",)))
    assert r.status_code == 200, r.text
    a = r.json()
    for key in (
        "transaction_id", "user_id", "amount", "currency", "merchant_id", "score", "tier",
        "reasons", "detector_scores", "rule_hits", "rules_version", "model_version", "verdicts",
        "timeline", "status",
    ):  # fmt: skip
        assert key in a, key
    assert a["reasons"][0]["detail"] == {"amount_zscore": 4.2}
    assert a["rule_hits"][0]["id"] == "velocity_burst"
    assert a["status"] == "open"
    assert a["verdicts"] == []
    # the user's decisions around it: up to 12 at or before it, 5 after, newest first
    mine = sorted(
        (r for r in console.rows if r["user_id"] == a["user_id"]), key=lambda r: r["event_time"]
    )
    k = [r["alert_id"] for r in mine].index("a000010")
    want = [r["transaction_id"] for r in reversed(mine[max(0, k - 11) : k + 6])]
    assert [t["transaction_id"] for t in a["timeline"]] == want
    assert len(mine) > k + 6  # the table has later decisions than the timeline shows
    assert console.client.get("/api/alerts/nope", headers=auth()).status_code == 404


def test_verdict_recorded_published_and_idempotent(console: Console) -> None:
    labels_topic = console.settings.kafka.labels_topic
    r = console.client.post(
        "/api/alerts/a000010/verdict", json={"label": "fraud", "note": "card reported stolen"},
        headers=auth("ana"),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] is True
    assert body["published"] is True
    assert body["verdict"]["author"] == "ana"
    # repeat: nothing new recorded, nothing published again
    again = console.client.post(
        "/api/alerts/a000010/verdict", json={"label": "fraud"}, headers=auth("bob")
    )
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["verdict"]["id"] == body["verdict"]["id"]
    # a change of mind is a new verdict and a new label
    changed = console.client.post(
        "/api/alerts/a000010/verdict", json={"label": "legit"}, headers=auth("bob")
    )
    assert changed.json()["created"] is True

    with psycopg.connect(console.dsn) as c:
        verdicts = c.execute(
            "select label, author, note, published_at is not null from verdicts order by id"
        ).fetchall()
        status = c.execute("select status, updated_by from alert_status").fetchall()
        audit = c.execute(
            "select actor, action, target, detail->>'label' from audit order by id"
        ).fetchall()
    assert verdicts == [
        ("fraud", "ana", "card reported stolen", True),
        ("legit", "bob", "", True),
    ]
    assert status == [("legit", "bob")]
    assert audit == [
        ("ana", "verdict", "alert:a000010", "fraud"),
        ("bob", "verdict", "alert:a000010", "legit"),
    ]

    msgs = _messages(console, labels_topic, 2)
    assert [m.key() for m in msgs] == [b"u010", b"u010"]  # keyed by user_id
    parsed = [parse_label(_Raw(m), ValidationSettings(), time.time()) for m in msgs]
    assert [(p.transaction_id, p.label) for p in parsed] == [("t000010", 1), ("t000010", 0)]

    # the queue shows the status; open no longer lists it
    detail = console.client.get("/api/alerts/a000010", headers=auth()).json()
    assert detail["status"] == "legit"
    assert [v["label"] for v in detail["verdicts"]] == ["legit", "fraud"]
    open_ids = {a["alert_id"] for a in pages(console, {"limit": 500})}
    assert "a000010" not in open_ids
    legit = pages(console, {"status": "legit"})
    assert [a["alert_id"] for a in legit] == ["a000010"]


class _Raw:
    def __init__(self, m: Any) -> None:
        self.key, self.value = m.key(), m.value()
        self.topic, self.partition, self.offset = m.topic(), m.partition(), m.offset()


def _messages(console: Console, topic: str, n: int) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": ",".join(console.settings.kafka.brokers),
            "group.id": "console-test",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            got += [m for m in consumer.consume(10, 0.5) if m.error() is None]
    finally:
        consumer.close()
    assert len(got) == n, got
    return got


def test_user_profile_from_redis(console: Console, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    key = "fraudflow:profile:u003"
    r.hset(key, mapping={"last_score": "0.91", "last_tier": "block"})
    try:
        settings = console.settings.replace(redis_url=redis_url)
        with TestClient(create_app(settings)) as client:
            body = client.get("/api/users/u003", headers=auth("vic", ("viewer",))).json()
    finally:
        r.delete(key)
    assert body["profile"] == {"last_score": "0.91", "last_tier": "block"}
    assert {d["transaction_id"] for d in body["decisions"]} == {
        x["transaction_id"] for x in console.rows if x["user_id"] == "u003"
    }


def test_rules_listed_and_checked(console: Console) -> None:
    r = console.client.get("/api/rules", headers=auth("vic", ("viewer",))).json()
    assert r["ok"] is True
    assert "blocked_merchant" in [x["id"] for x in r["rules"]]
    files = {x["file"] for x in r["rules"]}
    assert "denylists.yaml" in files
    assert not any(f.startswith("/") for f in files)  # no server paths
    good = "rules:\n  - id: big\n    description: big\n    when: amount > 5000\n    score: 0.5\n"
    bad = "rules:\n  - id: big\n    description: big\n    when: amount >> 5000\n    score: 0.5\n"
    ok = console.client.post(
        "/api/rules/check",
        json={"files": {"big.yaml": good}},
        headers=auth("rita", ("rule_editor",)),
    ).json()
    assert ok["ok"] is True
    assert ok["version"] != r["version"]
    ko = console.client.post(
        "/api/rules/check",
        json={"files": {"big.yaml": bad}},
        headers=auth("rita", ("rule_editor",)),
    ).json()
    assert ko["ok"] is False
    assert ko["diagnostics"][0]["file"] == "big.yaml"
    assert ko["diagnostics"][0]["line"] == 4
    escape = console.client.post(
        "/api/rules/check",
        json={"files": {"../x.yaml": good}},
        headers=auth("rita", ("rule_editor",)),
    )
    assert escape.status_code == 400


def test_readyz_and_healthz(console: Console) -> None:
    assert console.client.get("/healthz").json() == {"status": "ok"}
    r = console.client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"postgres": "ok", "labels_topic": "ok"}


def test_openapi_lists_the_routes(console: Console) -> None:
    spec = orjson.loads(console.client.get("/openapi.json").content)
    assert {"/api/alerts", "/api/alerts/{alert_id}", "/api/alerts/{alert_id}/verdict",
            "/api/users/{user_id}", "/api/rules", "/api/rules/check",
            "/api/rules/backtest"} <= set(spec["paths"])  # fmt: skip
    # /docs can send a token: the bearer scheme is declared on the API's routes
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/alerts"]["get"]["security"] == [{"HTTPBearer": []}]


def test_rules_backtest_job_reports_what_a_change_adds(console: Console) -> None:
    """Replays the stored decisions with a proposed rule: every alert it adds is one the
    rule fires on, and the job's progress ends at 1."""
    rule = (
        "rules:\n  - id: big_amount\n    description: large amount\n"
        "    when: amount > 2500\n    score: 0.6\n    tier: review\n    severity: high\n"
    )
    editor = auth("rita", ("rule_editor",))
    r = console.client.post(
        "/api/rules/backtest",
        json={
            "files": {"big.yaml": rule},
            "from": "2026-11-01T00:00:00Z",
            "to": "2026-11-02T00:00:00Z",
        },
        headers=editor,
    )
    assert r.status_code == 202, r.text
    job = r.json()
    seen = [job["progress"]]
    deadline = time.monotonic() + 240
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
        job = console.client.get(f"/api/rules/backtest/{job['job_id']}", headers=editor).json()
        seen.append(job["progress"])
    assert job["status"] == "done", job
    assert seen == sorted(seen)
    assert job["progress"] == 1.0
    res = job["result"]
    assert res["transactions"] == len(console.rows)
    big = {x["transaction_id"] for x in console.rows if x["amount"] > 2500}
    assert big
    added = {a["transaction_id"] for a in res["added_alerts"]}
    assert added <= big
    assert res["dropped"] == 0
    assert res["added"] == len(added)
    assert {"rule_id": "big_amount", "hits_current": 0, "hits_proposed": len(big)} in res[
        "rules_changed"
    ]
    with psycopg.connect(console.dsn) as c:
        assert c.execute("select actor, action from audit").fetchall() == [
            ("rita", "rules_backtest")
        ]
    bad = console.client.post(
        "/api/rules/backtest",
        json={
            "files": {"big.yaml": "rules: [1"},
            "from": "2026-11-01T00:00:00Z",
            "to": "2026-11-02T00:00:00Z",
        },
        headers=editor,
    )
    assert bad.status_code == 422


def test_ui_pages_render_what_the_api_returns(console: Console) -> None:
    c = console.client
    assert c.post("/login", data={"token": token("vic", ("viewer",))}).status_code == 200
    queue = c.get("/", params={"tier": "block", "sort": "time"})
    assert queue.status_code == 200
    top = c.get(
        "/api/alerts", params={"tier": "block", "sort": "time"}, headers=auth("v", ("viewer",))
    ).json()["alerts"]
    assert [a["alert_id"] for a in top] == re.findall(r'data-id="([^"]+)"', queue.text)
    alert = c.get("/alerts/a000010")
    assert alert.status_code == 200
    assert "amount_zscore" in alert.text
    assert "velocity_burst" in alert.text
    assert "read-only" in alert.text  # a viewer gets no verdict buttons
    user = c.get("/users/u003")
    assert user.status_code == 200
    assert "/alerts/a000003" in user.text
    rules = c.get("/rules")
    assert "blocked_merchant" in rules.text
    assert "Try a change" not in rules.text  # only for rule editors
    # escaped, not interpreted
    insert(console.dsn, [alert_row(900, random.Random(1), user_id="<script>x</script>")])
    page = c.get("/", params={"status": "any", "user_id": "<script>x</script>"})
    assert "<script>x</script>" not in page.text
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text
    # a valid token without a known role sees no page
    c.post("/login", data={"token": token("nobody", ())})
    assert c.get("/").status_code == 403

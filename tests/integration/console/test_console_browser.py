"""A real browser on a real server: sign in with a token, open the queue, open an alert,
mark it fraud with the keyboard, see the label arrive on the labels topic.

Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``make test``) driven by
Playwright for Python; Playwright's own browser download is not used. The
stored alerts come from the flow itself: synthetic transactions replayed
through the production flow, written with the sink's own row function.
Screenshots go to the test's directory; with ``FRAUDFLOW_UPDATE_SCREENSHOTS=1``
also to docs/img/ (the pictures docs/console.md shows).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import expect, sync_playwright

from fraudflow.backtest.replay import replay
from fraudflow.config.settings import Settings
from fraudflow.connectors.broker import EmbeddedBroker
from fraudflow.connectors.files import JsonLinesSource
from fraudflow.connectors.topics import read_topic
from fraudflow.console.schema import apply_migrations
from fraudflow.sinks.columns import WRITE_COLUMNS, decision_row
from tests.integration.console.console_support import SECRET, token

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _store_flow_decisions(dsn: str, tmp: Path) -> int:
    """Replay 6,000 synthetic transactions through the flow; store its decisions."""
    data = tmp / "tx.jsonl"
    subprocess.run(
        [sys.executable, "-m", "fraudflow", "produce", "--out", str(data), "--count", "6000",
         "--users", "150", "--seed", "11", "--anomaly-rate", "0.03", "--quiet"],
        check=True, timeout=300,
    )  # fmt: skip
    result = replay(Settings(), JsonLinesSource([data]))
    with psycopg.connect(dsn, autocommit=True) as c:
        apply_migrations(c)
    cols = ", ".join(c for c, _ in WRITE_COLUMNS)
    with psycopg.connect(dsn) as c:
        for table, rows in (
            ("decisions", result.decisions),
            ("alerts", [d for d in result.decisions if d.is_alert]),
        ):
            with c.cursor().copy(f"copy {table} ({cols}) from stdin") as copy:
                copy.set_types([t for _, t in WRITE_COLUMNS])
                for d in rows:
                    copy.write_row(decision_row(d))
    return sum(1 for d in result.decisions if d.is_alert)


@pytest.fixture
def server(
    database: str, broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """``fraudflow serve`` (uvicorn) on a free port; yields (base URL, labels topic)."""
    assert _store_flow_decisions(database, tmp_path) >= 20
    labels = f"{topic}-labels"
    broker.create_topic(labels, 1)
    port = _free_port()
    env = {
        **os.environ,
        "FRAUDFLOW_POSTGRES_DSN": database,
        "FRAUDFLOW_BROKERS": broker.bootstrap,
        "FRAUDFLOW_LABELS_TOPIC": labels,
        "FRAUDFLOW_JWT_SECRET": SECRET,
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraudflow", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        yield base, labels
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_sign_in_triage_an_alert_and_see_the_label(
    server: tuple[str, str], database: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: 'make test' installs Debian's chromium package (apt-get)"
    )
    base, labels = server
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(base + "/")
        expect(page).to_have_url(
            f"{base}/login?next=%2F&why=authentication+required%3A+send+%27Authorization%3A+Bearer+%3Ctoken%3E%27"
        )
        page.fill("#token", token("ana", ("analyst",)))
        page.click("button[type=submit]")

        # the queue: open alerts by score, the first row selected
        expect(page.locator("#queue tbody tr.row").first).to_be_visible()
        rows = page.locator("#queue tbody tr.row")
        assert rows.count() == 50
        expect(rows.first).to_have_class("row open sel")
        page.screenshot(path=str(shots / "console-queue.png"))

        # j moves the selection, enter opens it
        page.keyboard.press("j")
        expect(rows.nth(1)).to_have_class("row open sel")
        second = rows.nth(1).get_attribute("data-id")
        third = rows.nth(2).get_attribute("data-id")
        page.keyboard.press("Enter")
        expect(page.locator("#alert")).to_have_attribute("data-id", str(second))
        expect(page.locator("#alert")).to_have_attribute("data-status", "open")
        expect(page.locator("table.reasons tr").first).to_be_visible()
        expect(page.locator("table.timeline tr.this")).to_have_count(1)
        page.screenshot(path=str(shots / "console-alert.png"))

        # f marks it fraud: a toast at once, then the next open alert opens
        page.keyboard.press("f")
        expect(page.locator("#toast")).to_contain_text("Marked FRAUD")
        expect(page.locator(".verdict .status .pill")).to_have_text("fraud")
        expect(page.locator("#alert")).to_have_attribute("data-id", str(third), timeout=10_000)
        expect(page.locator("#toast")).to_contain_text("Marked FRAUD")
        page.screenshot(path=str(shots / "console-after-verdict.png"))

        # the rules page lists the rules in force; an analyst gets no rule editor
        page.keyboard.press("q")
        expect(page.locator("#queue")).to_be_visible()
        page.click("header nav a[href='/rules']")
        expect(page.locator("table.rules tbody tr").first).to_be_visible()
        assert page.locator("#propose").count() == 0
        page.screenshot(path=str(shots / "console-rules.png"))
        browser.close()

    with psycopg.connect(database) as c:
        v = c.execute(
            "select alert_id, transaction_id, user_id, label, author from verdicts"
        ).fetchall()
    assert len(v) == 1
    alert_id, txn, _user, label, author = v[0]
    assert (alert_id, label, author) == (second, "fraud", "ana")
    deadline = time.monotonic() + 30
    while not (got := read_topic(broker.bootstrap, labels)):
        assert time.monotonic() < deadline, "no label on the labels topic"
        time.sleep(0.5)
    assert [(g["transaction_id"], g["label"]) for g in got] == [(txn, "fraud")]

    if os.environ.get("FRAUDFLOW_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for name in ("console-queue.png", "console-alert.png"):
            shutil.copy(shots / name, DOCS_IMG / name)
    for name in ("console-queue.png", "console-alert.png", "console-after-verdict.png"):
        assert (shots / name).stat().st_size > 10_000

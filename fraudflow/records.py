"""The records that flow between steps: transactions, dead letters, decisions.

Times inside the flow are float seconds since the epoch (UTC); they become
RFC 3339 strings only at the edges (JSON out).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

TIERS = ("approve", "review", "block")
TIER_RANK = {t: i for i, t in enumerate(TIERS)}


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds.

    >>> iso(0.25)
    '1970-01-01T00:00:00.250Z'
    """
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Transaction:
    """A validated input transaction (see DESIGN.md section 2)."""

    transaction_id: str
    user_id: str
    amount: float
    ts: float
    currency: str
    merchant_id: str | None = None
    merchant_category: str | None = None
    country: str | None = None
    payment_method: str | None = None
    device_id: str | None = None
    channel: str | None = None
    ip: str | None = None
    lat: float | None = None
    lon: float | None = None
    # where it came from, for tracing a decision back to its input
    topic: str = ""
    partition: int = -1
    offset: int = -1
    # the message's bytes, kept from parse to the score step only (a duplicate's
    # dead letter carries them); cleared once the record is scored
    raw: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class DeadLetter:
    """A record that could not be accepted, with why and where it came from."""

    code: str
    message: str
    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    dead_at: float
    step: str = "validate"

    def to_dict(self) -> dict[str, Any]:
        value: str | None
        encoding = "utf-8"
        if self.value is None:
            value = None
        else:
            try:
                value = self.value.decode("utf-8")
            except UnicodeDecodeError:
                value, encoding = base64.b64encode(self.value).decode("ascii"), "base64"
        key = None if self.key is None else base64.b64encode(self.key).decode("ascii")
        return {
            "error": {"code": self.code, "message": self.message, "step": self.step},
            "value": value,
            "value_encoding": encoding,
            "key_base64": key,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "dead_at": iso(self.dead_at),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def key_bytes(self) -> bytes | None:
        return self.key


@dataclass(slots=True)
class Label:
    """A confirmed outcome of a transaction (analyst verdict, chargeback): 1 fraud, 0 legit.

    It travels with the partition it was read from and keeps its raw value,
    so a label that cannot be used is dead-lettered as it arrived.
    """

    transaction_id: str
    label: int
    reported_at: float
    value: bytes
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1

    def dead(self, code: str, message: str, now: float) -> DeadLetter:
        return DeadLetter(
            code=code,
            message=message,
            value=self.value,
            key=self.key,
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            dead_at=now,
            step="feedback",
        )


@dataclass(slots=True)
class FeatureRow:
    """A transaction with its feature record (every catalogue name, see catalogue.py)."""

    txn: Transaction
    features: dict[str, Any]


@dataclass(slots=True)
class Reason:
    """One contribution to a decision: which detector or rule, how much, and why."""

    code: str
    contribution: float
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "contribution": round(self.contribution, 4),
            "detail": self.detail,
        }


@dataclass(slots=True)
class Decision:
    """The ensemble's verdict on one transaction; an alert when tier >= review."""

    alert_id: str
    txn: Transaction
    score: float
    tier: str
    detector_scores: dict[str, float]
    rule_hits: list[dict[str, Any]]
    reasons: list[Reason]
    rules_version: str
    model_version: str
    features: dict[str, Any] = field(default_factory=dict)
    processed_at: float = 0.0
    late: bool = False
    review_threshold: float = 0.0  # the one in force: configured, or raised by the alert budget

    @property
    def is_alert(self) -> bool:
        return self.tier != "approve"

    def to_dict(self) -> dict[str, Any]:
        t = self.txn
        return {
            "alert_id": self.alert_id,
            "transaction_id": t.transaction_id,
            "user_id": t.user_id,
            "timestamp": iso(t.ts),
            "processed_at": iso(self.processed_at),
            "amount": t.amount,
            "currency": t.currency,
            "merchant_id": t.merchant_id,
            "country": t.country,
            "score": round(self.score, 6),
            "tier": self.tier,
            "detector_scores": {k: round(v, 6) for k, v in self.detector_scores.items()},
            "rule_hits": self.rule_hits,
            "reasons": [r.to_dict() for r in self.reasons],
            "rules_version": self.rules_version,
            "model_version": self.model_version,
            "late": self.late,
            "review_threshold": round(self.review_threshold, 6),
            "source": {"topic": t.topic, "partition": t.partition, "offset": t.offset},
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def key_bytes(self) -> bytes:
        return self.txn.user_id.encode("utf-8")


def alert_id(user_id: str, transaction_id: str, model_version: str, rules_version: str) -> str:
    """Deterministic id of the decision on one user's transaction.

    A replay with the same model and rules gives the same id; the user is part
    of it, so the same ``transaction_id`` sent for two users gives two ids.

    >>> alert_id("u1", "t1", "m1", "r1") == alert_id("u1", "t1", "m1", "r1")
    True
    >>> alert_id("u1", "t1", "m1", "r1") == alert_id("u2", "t1", "m1", "r1")
    False
    >>> len(alert_id("u1", "t1", "m1", "r1"))
    32
    """
    # length-prefixed, so no choice of separators inside the ids can make two inputs collide
    parts = (user_id, transaction_id, model_version, rules_version)
    data = b"".join(len(b).to_bytes(4, "big") + b for b in (x.encode() for x in parts))
    return hashlib.blake2b(data, digest_size=16).hexdigest()

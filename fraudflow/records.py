"""The records that flow between steps: transactions, dead letters, decisions.

Times inside the flow are float seconds since the epoch (UTC); they become
RFC 3339 strings only at the edges (JSON out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field, replace
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


# Bounds of a serialized dead letter (see dead_letter_max_bytes).
DLQ_KEY_MAX = 512  # a dead letter's Kafka key is the original key up to this, else a digest
DLQ_MESSAGE_MAX = 1024  # characters of an error message kept in a dead letter
_DLQ_FIXED = 4096  # error code, step, source topic (<= 249), offsets, time, field names


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    """How records are written to outputs that leave the flow (alerts, dead letters).

    ``max_payload_bytes``: bytes of a dead letter's original value (and key)
    copied into it, 0 for none. ``pseudonymize_key``: when set, ``user_id``,
    ``device_id`` and ``ip`` become keyed hashes (HMAC-SHA256) in the records
    the policy is applied to (the Kafka alerts and dead-letter sinks), and dead
    letters carry no payload unless ``payload_with_pseudonyms``. The key never
    shows in ``repr``.

    >>> p = OutputPolicy(pseudonymize_key=b"k")
    >>> p, p.payload_bytes(), len(p.pseudonym("u1"))
    (OutputPolicy(max_payload_bytes=16384, payload_with_pseudonyms=False), 0, 32)
    """

    max_payload_bytes: int = 16384
    pseudonymize_key: bytes | None = field(default=None, repr=False)
    payload_with_pseudonyms: bool = False

    def payload_bytes(self) -> int:
        """Bytes of an original copied into a dead letter under this policy."""
        if self.pseudonymize_key is not None and not self.payload_with_pseudonyms:
            return 0
        return self.max_payload_bytes

    def without_payload(self) -> OutputPolicy:
        return replace(self, max_payload_bytes=0)

    def pseudonym(self, text: str | None) -> str | None:
        """The id as written out: itself, or 32 hex digits of its HMAC-SHA256."""
        if text is None or self.pseudonymize_key is None:
            return text
        return self._mac(text.encode("utf-8"))[:32]

    def digest(self, data: bytes) -> str:
        """SHA-256 of an original (HMAC-SHA256 when pseudonymising), hex."""
        if self.pseudonymize_key is None:
            return hashlib.sha256(data).hexdigest()
        return self._mac(data)

    @property
    def digest_name(self) -> str:
        return "sha256" if self.pseudonymize_key is None else "hmac-sha256"

    def _mac(self, data: bytes) -> str:
        assert self.pseudonymize_key is not None
        return hmac.new(self.pseudonymize_key, data, hashlib.sha256).hexdigest()


PLAIN = OutputPolicy()
# the Transaction fields an OutputPolicy with a key pseudonymises (also in reason details)
PSEUDONYMIZED = frozenset({"user_id", "device_id", "ip"})


def dead_letter_max_bytes(max_payload_bytes: int) -> int:
    """Upper bound of a serialized dead letter's value plus key, for any input.

    A text prefix escapes to at most 6 bytes per byte (``\\u0000``), base64 to
    4 per 3; the key is base64 as well; the message is cut at
    ``DLQ_MESSAGE_MAX`` characters (6 bytes each at worst).

    >>> dead_letter_max_bytes(16384)
    130904
    """
    n = max_payload_bytes
    key_b64 = 4 * ((n + 2) // 3)
    return 6 * n + key_b64 + DLQ_KEY_MAX + 6 * DLQ_MESSAGE_MAX + _DLQ_FIXED


def _utf8_prefix(data: bytes, n: int) -> str | None:
    """The first ``n`` bytes as text (a character cut in two is left out), or None
    when they are not UTF-8."""
    head = data[:n]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut_char = exc.reason == "unexpected end of data" and len(head) < len(data)
        if cut_char and exc.start >= len(head) - 3:
            return head[: exc.start].decode("utf-8")
        return None


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

    def to_dict(self, policy: OutputPolicy = PLAIN) -> dict[str, Any]:
        """The JSON form: the original cut to the policy's payload size, with length and digest.

        >>> d = DeadLetter("bad_json", "x", b"abcdef", b"u1", "t", 0, 1, 0.0)
        >>> r = d.to_dict(OutputPolicy(max_payload_bytes=3))
        >>> r["value"], r["value_bytes"], r["value_truncated"], r["key_base64"]
        ('abc', 6, True, 'dTE=')
        """
        n = policy.payload_bytes()
        value: str | None = None
        encoding, kept = "utf-8", 0
        if self.value is not None:
            text = _utf8_prefix(self.value, n)
            if text is None:
                kept = min(n, len(self.value))
                value, encoding = base64.b64encode(self.value[:n]).decode("ascii"), "base64"
            else:
                value, kept = text, len(text.encode("utf-8"))
        key = None if self.key is None else base64.b64encode(self.key[:n]).decode("ascii")
        message = self.message
        if len(message) > DLQ_MESSAGE_MAX:
            message = message[: DLQ_MESSAGE_MAX - 3] + "..."
        return {
            "error": {"code": self.code, "message": message, "step": self.step[:64]},
            "value": value,
            "value_encoding": encoding,
            "value_bytes": None if self.value is None else len(self.value),
            "value_truncated": self.value is not None and kept < len(self.value),
            "value_digest": None if self.value is None else policy.digest(self.value),
            "key_base64": key,
            "key_bytes": None if self.key is None else len(self.key),
            "key_truncated": self.key is not None and n < len(self.key),
            "key_digest": None if self.key is None else policy.digest(self.key),
            "digest": policy.digest_name,
            "source": {
                "topic": self.topic[:249],
                "partition": self.partition,
                "offset": self.offset,
            },
            "dead_at": iso(self.dead_at),
        }

    def to_json(self, policy: OutputPolicy = PLAIN) -> bytes:
        return orjson.dumps(self.to_dict(policy))

    def key_bytes(self, policy: OutputPolicy = PLAIN) -> bytes | None:
        """The dead letter's Kafka key: the original key (a pseudonym when pseudonymising),
        or its digest when longer than ``DLQ_KEY_MAX``."""
        if self.key is None:
            return None
        if policy.pseudonymize_key is not None:
            return policy.digest(self.key)[:32].encode("ascii")
        if len(self.key) > DLQ_KEY_MAX:
            return policy.digest(self.key).encode("ascii")
        return self.key


@dataclass(slots=True)
class Label:
    """A confirmed outcome of a transaction (analyst verdict, chargeback): 1 fraud, 0 legit.

    It keeps where it was read (topic, partition, offset), which the labels store
    records with it (:mod:`fraudflow.training.labels`), and its raw value.
    """

    transaction_id: str
    label: int
    reported_at: float
    value: bytes
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1


@dataclass(slots=True)
class FeatureRow:
    """A transaction, its feature record and its detector scores.

    ``features``: what the feature step computed (catalogue.py). ``scores``: detector name
    -> score in [0, 1], set by the shard's detectors (operators/detectors/registry.py); no
    detector writes into ``features``.
    """

    txn: Transaction
    features: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """The features and every detector score as ``<name>_score``: what rules read.

        >>> FeatureRow(Transaction("t", "u", 1.0, 0.0, "EUR"), {"amount": 1.0}, {"hst": 0.5}).view()
        {'amount': 1.0, 'hst_score': 0.5}
        """
        out = dict(self.features)
        for name, s in self.scores.items():
            out[f"{name}_score"] = s
        return out


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired on one record; ``values``: the features its ``when`` reads."""

    rule_id: str
    score: float
    tier: str | None
    severity: str
    description: str
    values: dict[str, Any]
    must_review: bool = False  # a policy rule: its tier is kept even over the alert budget

    def to_dict(self) -> dict[str, Any]:
        """The hit as decisions carry it out (alerts topic, decision store)."""
        return {
            "id": self.rule_id,
            "score": self.score,
            "tier": self.tier,
            "severity": self.severity,
            "must_review": self.must_review,
        }


@dataclass(slots=True)
class Reason:
    """One contribution to a decision: which detector or rule, how much, and why."""

    code: str
    contribution: float
    detail: dict[str, Any]

    def to_dict(self, policy: OutputPolicy = PLAIN) -> dict[str, Any]:
        detail = self.detail
        if policy.pseudonymize_key is not None and not PSEUDONYMIZED.isdisjoint(detail):
            detail = {
                k: policy.pseudonym(v) if k in PSEUDONYMIZED and isinstance(v, str) else v
                for k, v in detail.items()
            }
        return {
            "code": self.code,
            "contribution": round(self.contribution, 4),
            "detail": detail,
        }


@dataclass(slots=True)
class Decision:
    """The ensemble's verdict on one transaction; an alert when tier >= review."""

    alert_id: str
    txn: Transaction
    score: float
    tier: str
    detector_scores: dict[str, float]
    rule_hits: list[RuleHit]
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

    def to_dict(self, policy: OutputPolicy = PLAIN) -> dict[str, Any]:
        t = self.txn
        return {
            "alert_id": self.alert_id,
            "transaction_id": t.transaction_id,
            "user_id": policy.pseudonym(t.user_id),
            "timestamp": iso(t.ts),
            "processed_at": iso(self.processed_at),
            "amount": t.amount,
            "currency": t.currency,
            "merchant_id": t.merchant_id,
            "country": t.country,
            "score": round(self.score, 6),
            "tier": self.tier,
            "detector_scores": {k: round(v, 6) for k, v in self.detector_scores.items()},
            "rule_hits": [h.to_dict() for h in self.rule_hits],
            "reasons": [r.to_dict(policy) for r in self.reasons],
            "rules_version": self.rules_version,
            "model_version": self.model_version,
            "late": self.late,
            "review_threshold": round(self.review_threshold, 6),
            "source": {"topic": t.topic, "partition": t.partition, "offset": t.offset},
        }

    def to_json(self, policy: OutputPolicy = PLAIN) -> bytes:
        return orjson.dumps(self.to_dict(policy))

    def key_bytes(self, policy: OutputPolicy = PLAIN) -> bytes:
        return (policy.pseudonym(self.txn.user_id) or "").encode("utf-8")


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
    # surrogatepass: total on any str (validation keeps surrogates out; this never raises)
    encoded = (x.encode("utf-8", "surrogatepass") for x in parts)
    data = b"".join(len(b).to_bytes(4, "big") + b for b in encoded)
    return hashlib.blake2b(data, digest_size=16).hexdigest()

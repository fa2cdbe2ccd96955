"""Each user's latest risk profile as a Redis hash, for online services to read.

Key ``fraudflow:profile:{user_id}`` (the prefix is configurable), a hash with
a TTL refreshed on every update; fields are listed in :data:`PROFILE_FIELDS`
and in docs/sinks.md. A batch is one non-transactional pipeline with one
``EVALSHA`` per user. The script writes only when the decision is not older
than the stored one, ordered by ``(last_event_ts, last_decision_id)``, so a
replay rewrites the same values and a late or replayed older event never
takes a profile back in time. Within a batch the newest decision per user
is the only one sent.

A decision whose content cannot be sent (text that is not encodable) or that
Redis refuses alone (an error reply to its script, while the others succeed)
is dead-lettered (:mod:`fraudflow.sinks.rejects`); an error of the store
itself (out of memory, read-only replica, ...) still fails the write.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import orjson
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fraudflow.config.settings import Secret
from fraudflow.records import DeadLetter, Decision, iso
from fraudflow.sinks import metrics
from fraudflow.sinks.rejects import Rejects
from fraudflow.sinks.retry import Retrier, SinkError, scrub, secret_parts

SINK = "redis"
DEFAULT_PREFIX = "fraudflow:profile:"
DEFAULT_RETRY_LIMIT = timedelta(seconds=60)
SCHEMA_VERSION = "1"
TRANSIENT: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.ReadOnlyError,
)

# Features copied from the decision's feature record when present: the
# velocity counts and sums of every window and a few key behaviour signals.
KEY_FEATURES = (
    "txn_count",
    "amount_mean",
    "amount_z",
    "secs_since_prev",
    "distinct_merchants_24h",
    "distinct_countries_24h",
    "travel_kmh",
)
VELOCITY_PREFIXES = ("count_", "sum_")
# error replies that are about the server, not about one key's content
STORE_ERRORS = ("OOM", "READONLY", "MASTERDOWN", "LOADING", "BUSY", "NOSCRIPT", "NOAUTH", "NOPERM")

PROFILE_FIELDS = {
    "user_id": "the user id",
    "last_event_ts": "event time of the latest decision, epoch seconds (float, the ordering key)",
    "last_event_time": "the same, RFC 3339 UTC",
    "last_decision_id": "alert_id of the latest decision (any tier; tie-break of equal times)",
    "last_transaction_id": "transaction of the latest decision",
    "last_score": "ensemble score of the latest decision, [0,1]",
    "last_tier": "approve | review | block",
    "last_amount": "amount of the latest transaction",
    "last_currency": "its currency",
    "last_country": "its country ('' when absent)",
    "last_merchant_id": "its merchant ('' when absent)",
    "last_alert_id": "alert_id of the latest decision with tier >= review (kept across approvals)",
    "last_alert_tier": "tier of that alert",
    "last_alert_time": "event time of that alert, RFC 3339 UTC",
    "count_<w>, sum_<w>": "velocity: the user's transaction count and amount sum in window <w>",
    "txn_count ... travel_kmh": "key features (see KEY_FEATURES), as of the latest decision",
    "rules_version, model_version": "versions that made the latest decision",
    "updated_at": "processing time of the latest decision, RFC 3339 UTC",
    "schema": "profile layout version (1)",
}

# KEYS[1] profile key; ARGV: event ts, decision id, ttl ms, and the field/value
# pairs as one JSON array of strings (one argument: redis-py packs each argument
# in Python, which cost more than Redis itself). Writes when (ts, id) >= the
# stored pair; returns 1 if written, 0 if older.
_UPSERT = """
local cur = redis.call('HMGET', KEYS[1], 'last_event_ts', 'last_decision_id')
if cur[1] then
  local ts, cts = tonumber(ARGV[1]), tonumber(cur[1])
  if cts > ts or (cts == ts and (cur[2] or '') > ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else str(v)


def latest_per_user(decisions: Iterable[Decision]) -> dict[str, Decision]:
    """The newest decision of each user, by ``(event time, alert_id)`` (pure)."""
    out: dict[str, Decision] = {}
    for d in decisions:
        uid = d.txn.user_id
        cur = out.get(uid)
        if cur is None or (d.txn.ts, d.alert_id) >= (cur.txn.ts, cur.alert_id):
            out[uid] = d
    return out


def profile_fields(d: Decision) -> dict[str, str]:
    """The hash fields a decision sets (pure); alert fields only when it is an alert."""
    t = d.txn
    f: dict[str, str] = {
        "user_id": t.user_id,
        "last_event_ts": repr(float(t.ts)),
        "last_event_time": iso(t.ts),
        "last_decision_id": d.alert_id,
        "last_transaction_id": t.transaction_id,
        "last_score": _text(round(d.score, 6)),
        "last_tier": d.tier,
        "last_amount": _text(float(t.amount)),
        "last_currency": t.currency,
        "last_country": _text(t.country),
        "last_merchant_id": _text(t.merchant_id),
        "rules_version": d.rules_version,
        "model_version": d.model_version,
        "updated_at": iso(d.processed_at),
        "schema": SCHEMA_VERSION,
    }
    if d.is_alert:
        f["last_alert_id"] = d.alert_id
        f["last_alert_tier"] = d.tier
        f["last_alert_time"] = iso(t.ts)
    feats = d.features
    for name, v in feats.items():
        if name.startswith(VELOCITY_PREFIXES):
            f[name] = _text(v)
    for name in KEY_FEATURES:
        if name in feats:
            f[name] = _text(feats[name])
    return f


class _RedisPartition(StatelessSinkPartition[Decision]):
    """Owns one Redis client (its connection pool reconnects by itself)."""

    def __init__(
        self,
        url: Secret,
        ttl: timedelta,
        prefix: str,
        retrier: Retrier,
        socket_timeout: float,
        *,
        rejects: Rejects,
    ) -> None:
        self._rejects = rejects
        self._client: redis.Redis = redis.Redis.from_url(
            url.reveal(), socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._script = self._client.register_script(_UPSERT)
        self._ttl_ms = max(1, int(ttl.total_seconds() * 1000))
        self._prefix = prefix
        self._retrier = retrier

    def _args(self, d: Decision) -> tuple[str, list[str | int | bytes]]:
        """Key and script arguments; raises ``ValueError``/``TypeError`` on unencodable text."""
        fields = profile_fields(d)
        pairs = [x for kv in fields.items() for x in kv]
        key = self._prefix + d.txn.user_id
        key.encode("utf-8")  # a lone surrogate fails here, not inside the pipeline
        d.alert_id.encode("utf-8")
        return key, [fields["last_event_ts"], d.alert_id, self._ttl_ms, orjson.dumps(pairs)]

    def _write(self, latest: Sequence[Decision]) -> list[tuple[Decision, str]]:
        """Send the batch; the decisions refused alone, with why."""
        refused: list[tuple[Decision, str]] = []
        sent: list[Decision] = []
        pipe = self._client.pipeline(transaction=False)
        for d in latest:
            try:
                key, args = self._args(d)
            except (TypeError, ValueError) as exc:
                refused.append((d, f"{type(exc).__name__}: {exc}"))
                continue
            self._script(keys=[key], args=args, client=pipe)
            sent.append(d)
        if not sent:
            return refused
        results = pipe.execute(raise_on_error=False)
        unsent = len(refused)  # refused before sending (encoding)
        for d, res in zip(sent, results, strict=True):
            if not isinstance(res, Exception):
                continue
            if isinstance(res, self._retrier.transient) or str(res).startswith(STORE_ERRORS):
                raise res
            if not isinstance(res, redis.ResponseError):
                raise res
            refused.append((d, f"{type(res).__name__}: {res}"))
        if len(sent) > 1 and len(refused) - unsent == len(sent):
            # every key sent got an error reply: the server or the script, not the content
            raise SinkError(f"{SINK} sink: every write refused: {refused[-1][1]}")
        return refused

    def write_batch(self, items: list[Decision]) -> None:
        """One pipeline: the newest decision of each user in the batch."""
        if not items:
            return
        started = time.perf_counter()
        latest = list(latest_per_user(items).values())
        refused = self._retrier.call(lambda: self._write(latest))
        for d, message in refused:
            self._rejects.reject(d, scrub(message, self._retrier.secrets))
        metrics.observe_sink_write(SINK, len(latest) - len(refused), time.perf_counter() - started)

    def close(self) -> None:
        self._client.close()
        self._rejects.close()


class RedisProfileSink(DynamicSink[Decision]):
    """Every worker upserts the profiles of the users in its decisions."""

    def __init__(
        self,
        url: Secret,
        ttl: timedelta,
        retry_limit: timedelta = DEFAULT_RETRY_LIMIT,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 5.0,
        seed: int = 0,
        dead_letters: DynamicSink[DeadLetter] | None = None,
    ) -> None:
        self.dead_letters = dead_letters
        if ttl.total_seconds() <= 0:
            raise ValueError("profile ttl must be positive")
        self.url = url if isinstance(url, Secret) else Secret(url)
        self.ttl = ttl
        self.retry_limit = retry_limit
        self.key_prefix = key_prefix
        self.socket_timeout = socket_timeout
        self.seed = seed

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisPartition:
        retrier = Retrier(
            SINK,
            self.retry_limit,
            TRANSIENT,
            tuple(secret_parts(self.url.reveal())),
            seed=self.seed + worker_index,
        )
        rejects = Rejects(SINK, self.dead_letters, step_id, worker_index, worker_count)
        return _RedisPartition(
            self.url, self.ttl, self.key_prefix, retrier, self.socket_timeout, rejects=rejects
        )

    def __repr__(self) -> str:
        return (
            f"RedisProfileSink(url={self.url!r}, ttl={self.ttl!r}, key_prefix={self.key_prefix!r})"
        )

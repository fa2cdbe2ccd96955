"""The names a rule can use: transaction fields, per-user features, detector scores.

The feature step fills exactly these keys in every feature record (window
names follow the configured windows), so the rule checker can reject an
unknown name or a type mismatch before a rule ever runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: type  # bool, int, float or str
    description: str


def window_label(window: timedelta) -> str:
    """``1m``, ``1h``, ``24h``, ``7d``, ``30s``: the suffix of window features.

    >>> window_label(timedelta(hours=24)), window_label(timedelta(seconds=90))
    ('24h', '90s')
    """
    secs = int(window.total_seconds())
    if secs % 3600 == 0 and secs < 86400 * 2:
        return f"{secs // 3600}h"
    if secs % 86400 == 0:
        return f"{secs // 86400}d"
    if secs % 60 == 0:
        return f"{secs // 60}m"
    return f"{secs}s"


_STATIC: tuple[tuple[str, type, str], ...] = (
    # the transaction itself (optional strings are "" when absent)
    ("transaction_id", str, "the transaction's id"),
    ("user_id", str, "the user (card holder / account) id"),
    ("amount", float, "amount in the transaction's currency"),
    ("currency", str, "ISO 4217 currency code"),
    ("merchant_id", str, "merchant id, '' when absent"),
    ("merchant_category", str, "merchant category, '' when absent"),
    ("country", str, "ISO 3166 alpha-2 country of the transaction, '' when absent"),
    ("payment_method", str, "payment method (card, wallet, ...), '' when absent"),
    ("device_id", str, "device id, '' when absent"),
    ("channel", str, "channel (online, pos, atm, ...), '' when absent"),
    ("ip", str, "client IP address, '' when absent"),
    ("hour", int, "hour of the event time, 0-23, UTC"),
    # the user's history before this transaction
    ("txn_count", int, "transactions of this user seen before this one (since state expiry)"),
    ("secs_since_prev", float, "seconds since the user's previous transaction; 1e9 if none"),
    ("amount_mean", float, "geometric mean of the user's previous amounts; 0 if none"),
    ("amount_z", float, "z-score of log(1+amount) against the user's history; 0 in warm-up"),
    (
        "amount_iqr_excess",
        float,
        "(log amount - Q3) / IQR of the user's recent amounts; 0 in warm-up",
    ),
    ("new_merchant", bool, "first time this user pays this merchant (user has history)"),
    ("new_country", bool, "first time this user transacts in this country (user has history)"),
    ("new_device", bool, "first time this user uses this device (user has history)"),
    (
        "new_payment_method",
        bool,
        "first time this user uses this payment method (user has history)",
    ),
    (
        "new_category",
        bool,
        "first time this user pays in this merchant category (user has history)",
    ),
    ("device_age_h", float, "hours since this user first used this device; 0 when new or absent"),
    (
        "country_age_h",
        float,
        "hours since this user first transacted in this country; 0 when new or absent",
    ),
    (
        "hour_share",
        float,
        "share of the user's history at this hour (+-1h, smoothed); 1 in warm-up",
    ),
    ("unusual_hour", bool, "past warm-up and hour_share below 3%"),
    ("travel_kmh", float, "speed implied by the previous geolocated transaction; 0 if unknown"),
    (
        "fast_trips_before",
        int,
        "earlier transactions of this user faster than trusted_travel_kmh from their previous"
        " location (a travel habit: VPNs, frequent flyers)",
    ),
    (
        "distinct_merchants_24h",
        int,
        "distinct merchants of this user in the last 24h, this one included",
    ),
    (
        "distinct_countries_24h",
        int,
        "distinct countries of this user in the last 24h, this one included",
    ),
    ("late", bool, "event time is older than the user's latest minus the allowed lateness"),
    # the detectors' scores, each in [0, 1] (FeatureRow.scores, read by rules as <name>_score;
    # one per detector of operators/detectors/registry.py)
    (
        "hst_score",
        float,
        "Half-Space Trees: 1 - tail probability of its raw score in the shard's recent traffic"
        " (0.99: rarer than 99% of it)",
    ),
    ("zscore_score", float, "per-user amount z-score detector: 1 - its tail probability"),
    ("iqr_score", float, "per-user amount IQR detector: 1 - its tail probability"),
)


def feature_catalogue(windows: Iterable[timedelta]) -> dict[str, FeatureSpec]:
    """Every name a rule may use, with its type and description."""
    specs = [FeatureSpec(n, t, d) for n, t, d in _STATIC]
    for w in windows:
        label = window_label(w)
        specs.append(
            FeatureSpec(
                f"count_{label}", int, f"user's transactions in the last {label}, this one included"
            )
        )
        specs.append(
            FeatureSpec(
                f"sum_{label}", float, f"user's amount sum in the last {label}, this one included"
            )
        )
    return {s.name: s for s in specs}

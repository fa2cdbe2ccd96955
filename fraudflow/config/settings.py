"""Typed, frozen settings: YAML file, then ``FRAUDFLOW_*`` variables, then flags.

Every field name is unique across sections, so one flat name serves as the
YAML key inside its section, the environment variable (``FRAUDFLOW_`` +
upper case) and the command-line flag (``--`` + dashes).

>>> parse_duration("36h")
datetime.timedelta(days=1, seconds=43200)
>>> parse_duration("1m30s").total_seconds()
90.0
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from fraudflow.records import dead_letter_max_bytes

ENV_PREFIX = "FRAUDFLOW_"
KAFKA_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes
DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules" / "default"


class ConfigError(ValueError):
    """A setting is missing, malformed or inconsistent; the message names it.

    Several problems found at once are kept in ``problems`` and all shown.

    >>> print(ConfigError(["FRAUDFLOW_SEED: not an integer: 'x'", "--hst-trees: not an integer"]))
    2 problems in the settings:
      FRAUDFLOW_SEED: not an integer: 'x'
      --hst-trees: not an integer
    """

    def __init__(self, problem: str | list[str]) -> None:
        self.problems = [problem] if isinstance(problem, str) else list(problem)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems in the settings:\n  " + "\n  ".join(
                self.problems
            )
        super().__init__(text)


class Secret(str):
    """A string whose ``repr``/``str`` never shows the value (DSNs, passwords).

    >>> s = Secret("postgresql://u:pw@h/db")
    >>> repr(s), f"{s}", s.reveal()
    ("Secret('***')", '***', 'postgresql://u:pw@h/db')
    """

    __slots__ = ()

    def reveal(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``500ms``, ``30s``, ``5m``, ``36h``, ``7d``, ``1h30m`` or plain seconds."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=text)
    raw = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return timedelta(seconds=float(raw))
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(raw) or not raw:
        msg = f"not a duration: {text!r} (use e.g. 500ms, 30s, 5m, 36h, 7d)"
        raise ValueError(msg)
    return timedelta(seconds=total)


def _opt(default: Any, doc: str, **kw: Any) -> Any:
    """A settings field with its one-line documentation (shown by ``config show``)."""
    return field(default=default, metadata={"doc": doc, **kw})


@dataclass(frozen=True)
class KafkaSettings:
    brokers: tuple[str, ...] = _opt((), "Kafka bootstrap servers, HOST:PORT[,HOST:PORT]")
    input_topic: str = _opt("transactions", "topic of JSON transactions keyed by user_id")
    alerts_topic: str = _opt("alerts", "topic the alerts (tier >= review) go to")
    dlq_topic: str = _opt(
        "transactions-dlq", "dead-letter topic for records that fail parse/validate"
    )
    from_beginning: bool = _opt(False, "read the input from the earliest offset (else the latest)")
    exit_at_end: bool = _opt(False, "stop when the end of every input partition is reached")
    labels_topic: str = _opt(
        "labels",
        "topic of confirmed labels {transaction_id, label, reported_at} (with label_store)",
    )
    source_batch_size: int = _opt(1000, "messages read from Kafka per poll")
    kafka_config: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"doc": "extra librdkafka settings (k=v,k=v), passed through untouched"},
    )
    sasl_password: Secret | None = _opt(None, "SASL password (environment only)", secret=True)
    dlq_max_payload_bytes: int = _opt(
        16384, "bytes of a bad record's value and key copied into its dead letter (0 = none)"
    )
    startup_timeout: timedelta = _opt(
        timedelta(seconds=30), "at start, how long to wait for a broker to answer before failing"
    )

    def __repr__(self) -> str:  # librdkafka pass-through values with secret-like keys masked
        fields = dataclasses.fields(self)
        shown = ", ".join(f"{f.name}={masked(getattr(self, f.name))!r}" for f in fields)
        return f"KafkaSettings({shown})"


@dataclass(frozen=True)
class ValidationSettings:
    default_currency: str = _opt("USD", "currency assumed when a record has none")
    max_message_bytes: int = _opt(16384, "larger messages are dead-lettered as oversize")
    max_event_age: timedelta = _opt(timedelta(days=3650), "older event times are rejected")
    max_future_skew: timedelta = _opt(timedelta(days=1), "event times further ahead are rejected")
    duplicate_horizon: timedelta = _opt(
        timedelta(hours=24), "a transaction_id seen again within this is a duplicate"
    )


@dataclass(frozen=True)
class FeatureSettings:
    windows: tuple[timedelta, ...] = _opt(
        (timedelta(minutes=1), timedelta(hours=1), timedelta(hours=24)),
        "sliding windows for per-user count/sum features",
    )
    allowed_lateness: timedelta = _opt(
        timedelta(minutes=5), "out-of-order records within this of the user's latest are in-order"
    )
    idle_ttl: timedelta = _opt(timedelta(days=30), "per-user state is dropped after this idle time")
    max_events_per_user: int = _opt(512, "cap on events kept per user for window features")
    recent_set_size: int = _opt(32, "merchants/countries/devices/methods remembered per user")
    zscore_warmup: int = _opt(5, "transactions a user needs before z-score/IQR/hour scores count")
    trusted_travel_kmh: float = _opt(
        900.0, "a location implying faster travel is not kept as the user's last location"
    )
    max_event_ahead: timedelta = _opt(
        timedelta(minutes=5),
        "a record further ahead of the flow's clock moves the user's clock only to that clock",
    )


@dataclass(frozen=True)
class ModelSettings:
    hst_trees: int = _opt(15, "trees per Half-Space Trees model")
    hst_height: int = _opt(8, "height of each tree")
    hst_window: int = _opt(250, "Half-Space Trees reference window (records)")
    hst_warmup: int = _opt(1000, "records a shard must learn before its score counts")
    calibration_window: int = _opt(
        100_000, "recent scores per shard and detector a score's tail probability is taken in"
    )
    seed: int = _opt(42, "seed of every random model")


@dataclass(frozen=True)
class EnsembleSettings:
    weight_hst: float = _opt(
        1.0, "evidence weight of Half-Space Trees: its tail probability is raised to it; 0 = off"
    )
    weight_zscore: float = _opt(0.25, "evidence weight of the per-user amount z-score")
    weight_iqr: float = _opt(0.25, "evidence weight of the per-user amount IQR outlier score")
    weight_rules: float = _opt(1.0, "weight of the combined rule score")
    detector_prior: float = _opt(
        0.1, "prior of the bound that turns the strongest tail probability into a probability"
    )
    review_threshold: float = _opt(0.5, "score at or above which a decision is 'review'")
    block_threshold: float = _opt(0.85, "score at or above which a decision is 'block'")
    top_reasons: int = _opt(3, "reason codes kept per decision")
    alert_budget: float = _opt(
        0.015,
        "share of recent decisions per shard the review tier holds (the top scores); 0 = off,"
        " review_threshold alone",
    )
    alert_budget_window: int = _opt(20000, "decisions per shard the alert budget's quantile spans")


@dataclass(frozen=True)
class FeedbackSettings:
    """Learning from labels, in batch (docs/training.md). The section keeps its name from
    the in-flow feedback step it outlived (:data:`RETIRED`)."""

    feature_log: bool = _opt(
        False, "write every decision's model inputs to the PostgreSQL feature_log (training)"
    )
    label_store: bool = _opt(
        False, "write labels from the labels topic to the PostgreSQL labels table (training)"
    )
    trained_model: bool = _opt(
        False, "score with the model registry's serving model, hot-swapped (docs/training.md)"
    )
    model_reload_interval: timedelta = _opt(
        timedelta(seconds=2), "how often every process polls the model registry"
    )
    model_pin: str | None = _opt(None, "serve this model version, not the newest promoted one")
    label_orphan_horizon: timedelta = _opt(
        timedelta(days=30), "a stored label whose transaction is not logged by then is dead"
    )


@dataclass(frozen=True)
class SinkSettings:
    postgres_dsn: Secret | None = _opt(
        None, "PostgreSQL DSN; the decisions/alerts sink is on when set", secret=True
    )
    redis_url: Secret | None = _opt(
        None, "Redis URL; the user-profile sink is on when set", secret=True
    )
    metrics_port: int | None = _opt(None, "serve Prometheus /metrics on this port")
    metrics_host: str = _opt(
        "127.0.0.1", "address /metrics binds to (0.0.0.0: every interface, as in k8s)"
    )
    profile_ttl: timedelta = _opt(timedelta(days=7), "TTL of a user's Redis profile hash")
    redis_key_prefix: str = _opt("fraudflow:profile:", "Redis key of a profile: prefix + user_id")
    sink_retry_limit: timedelta = _opt(timedelta(seconds=60), "sinks retry a down store this long")
    pseudonymize_key: Secret | None = _opt(
        None,
        "key of the HMAC-SHA256 that replaces user_id/device_id/ip in alerts and dead letters "
        "(on when set; environment or file only, >= 16 characters)",
        secret=True,
    )
    dlq_payload_with_pseudonyms: bool = _opt(
        False, "with pseudonymize_key set, still copy the payload into dead letters"
    )


@dataclass(frozen=True)
class RecoverySettings:
    recovery_dir: Path | None = _opt(None, "directory of Bytewax recovery partitions (on when set)")
    snapshot_interval: timedelta = _opt(timedelta(seconds=10), "how often state is snapshotted")


@dataclass(frozen=True)
class RulesSettings:
    rules: Path = _opt(DEFAULT_RULES_DIR, "directory of rule YAML files")
    rules_reload_interval: timedelta = _opt(
        timedelta(seconds=1), "how often rule files are checked"
    )


@dataclass(frozen=True)
class ConsoleSettings:
    jwt_secret: Secret | None = _opt(
        None, "HS256 key of the analyst console's bearer tokens (environment only)", secret=True
    )
    jwt_public_key: Path | None = _opt(
        None, "PEM public key file: the console accepts RS256 tokens signed by its private key"
    )
    jwt_jwks_url: str | None = _opt(
        None, "JWKS URL of an identity provider: the console accepts its RS256 tokens"
    )
    jwt_audience: str | None = _opt(None, "when set, console tokens must carry this 'aud'")
    jwt_issuer: str | None = _opt(None, "when set, console tokens must carry this 'iss'")
    serve_host: str = _opt("127.0.0.1", "address the console listens on (0.0.0.0 in a container)")
    serve_port: int = _opt(8080, "port of the console's API and web UI")


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
    sinks: SinkSettings = field(default_factory=SinkSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    rules: RulesSettings = field(default_factory=RulesSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    def __post_init__(self) -> None:
        _check(self)

    def replace(self, **flat: Any) -> Settings:
        """A copy with flat-named fields replaced (``brokers=...``), validated again."""
        return _build(_as_nested(self), flat, source="override")


def _check(s: Settings) -> None:
    problems: list[str] = []
    for part in (_check_main, _check_outputs):
        try:
            part(s)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)


def _check_main(s: Settings) -> None:
    """Each failed condition is a problem; all are raised together."""
    problems: list[str] = []
    e = s.ensemble
    if not 0 < e.review_threshold < e.block_threshold <= 1:
        msg = (
            "ensemble: need 0 < review_threshold < block_threshold <= 1, got "
            f"{e.review_threshold} and {e.block_threshold}"
        )
        problems.append(msg)
    for name in ("weight_hst", "weight_zscore", "weight_iqr", "weight_rules"):
        if not 0 <= getattr(e, name) <= 1:
            problems.append(f"ensemble.{name}: must be within [0, 1]")
    if not 0 < e.detector_prior < 1:
        problems.append("ensemble.detector_prior: must be within (0, 1)")
    if not 0 <= e.alert_budget < 1 or e.alert_budget_window < 100:
        problems.append("ensemble: need 0 <= alert_budget < 1 and alert_budget_window >= 100")
    if not s.features.windows or any(w.total_seconds() <= 0 for w in s.features.windows):
        problems.append("features.windows: need at least one positive window")
    for name, low in (
        ("hst_trees", 1),
        ("hst_height", 1),
        ("hst_window", 1),
        ("hst_warmup", 0),
        ("calibration_window", 100),
    ):
        if getattr(s.model, name) < low:
            problems.append(f"model.{name}: must be >= {low}")
    if s.features.max_events_per_user < 2 or s.features.recent_set_size < 1:
        problems.append("features: max_events_per_user >= 2 and recent_set_size >= 1 required")
    if s.features.max_event_ahead.total_seconds() < 0:
        problems.append("features.max_event_ahead: must be >= 0")
    if s.validation.max_message_bytes < 64:
        problems.append("validation.max_message_bytes: must be >= 64")
    if s.recovery.snapshot_interval.total_seconds() <= 0:
        problems.append("recovery.snapshot_interval: must be positive")
    if problems:
        raise ConfigError(problems)


def _check_outputs(s: Settings) -> None:
    """A dead letter of any input must fit the producer's ``message.max.bytes``."""
    n = s.kafka.dlq_max_payload_bytes
    raw = s.kafka.kafka_config.get("message.max.bytes", str(KAFKA_MESSAGE_MAX_BYTES))
    problems: list[str] = []
    try:
        limit = int(raw)
    except ValueError:
        problems.append("kafka.kafka_config: message.max.bytes must be an integer")
        limit = KAFKA_MESSAGE_MAX_BYTES
    need = dead_letter_max_bytes(max(n, 0)) + 1024  # + librdkafka's per-message overhead
    if n < 0:
        problems.append("kafka.dlq_max_payload_bytes: must be >= 0")
    elif need > limit:
        problems.append(
            f"kafka.dlq_max_payload_bytes: {n} gives dead letters up to {need} bytes, "
            f"above message.max.bytes {limit}; lower it (0 = no payload)"
        )
    key = s.sinks.pseudonymize_key
    if key is not None and len(key.reveal()) < 16:
        problems.append("sinks.pseudonymize_key: must have at least 16 characters")
    if problems:
        raise ConfigError(problems)


# Settings of the in-flow feedback step (entity fraud rates in event time and an online
# logistic regression, one key for the whole cluster), retired in issue 17: labels train a
# model in batch now (docs/training.md). Setting one, anywhere, is an error that says so.
RETIRED: dict[str, str] = {
    **dict.fromkeys(
        (
            "feedback",
            "label_horizon",
            "max_pending",
            "early_label_horizon",
            "max_early_labels",
            "entity_fields",
            "entity_windows",
            "entity_prior_strength",
            "supervised_learning_rate",
            "supervised_warmup",
        ),
        "feedback",
    ),
    "weight_supervised": "ensemble",
    "weight_entity": "ensemble",
}


def retired(where: str, name: str) -> str:
    """The problem of a retired setting given at ``where``.

    >>> retired("environment: FRAUDFLOW_FEEDBACK", "feedback")  # doctest: +ELLIPSIS
    'environment: FRAUDFLOW_FEEDBACK: feedback.feedback was retired with the in-flow ...'
    """
    return (
        f"{where}: {RETIRED[name]}.{name} was retired with the in-flow feedback step; remove "
        "it (labels now train a model in batch: fraudflow train, docs/training.md)"
    )


# --- loading ---------------------------------------------------------------

SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaSettings,
    "validation": ValidationSettings,
    "features": FeatureSettings,
    "model": ModelSettings,
    "ensemble": EnsembleSettings,
    "sinks": SinkSettings,
    "recovery": RecoverySettings,
    "rules": RulesSettings,
    "feedback": FeedbackSettings,
    "console": ConsoleSettings,
}
_HINTS = {sec: typing.get_type_hints(cls) for sec, cls in SECTIONS.items()}
FIELDS: dict[str, tuple[str, dataclasses.Field[Any]]] = {
    f.name: (sec, f) for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)
}
_SECTION_FIELDS = {sec: [f.name for f in dataclasses.fields(cls)] for sec, cls in SECTIONS.items()}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint``; a ``ConfigError`` naming ``where`` otherwise (never a raw
    Python message, never the value of a secret)."""
    try:
        return _convert(value, hint)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        empty = value is None or (
            isinstance(value, str) and value.strip().lower() in ("", "none", "null")
        )
        if empty and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0])
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean (true/false, yes/no, on/off, 1/0): {value!r}")
    if hint is int:
        bad = isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())
        if bad or not isinstance(value, int | float | str):
            raise ValueError(f"not an integer: {value!r}")
        try:
            return int(value)
        except (ValueError, OverflowError):
            raise ValueError(f"not an integer: {value!r}") from None
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"not a number: {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"not a string: {type(value).__name__}")
        return str(value)
    if hint is Secret:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"not a string: {type(value).__name__}")
        return Secret(str(value))
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ValueError(f"not a path: {type(value).__name__}")
        return Path(str(value)).expanduser()
    if hint is timedelta:
        if isinstance(value, bool) or not isinstance(value, str | int | float | timedelta):
            raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 36h, 7d)")
        try:
            return parse_duration(value)
        except OverflowError:
            raise ValueError(f"not a duration: {value!r} is too long") from None
    if origin is tuple:
        if isinstance(value, str):
            items: list[Any] = value.split(",")
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ValueError(f"not a list (a,b,c or a YAML list): {type(value).__name__}")
        items = [i.strip() if isinstance(i, str) else i for i in items]
        return tuple(_convert(i, args[0]) for i in items if i != "")
    if origin is Mapping or hint is Mapping:
        if isinstance(value, str):
            pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("not KEY=VALUE[,KEY=VALUE...] pairs")
            value = {k.strip(): v.strip() for k, v in pairs}
        if not isinstance(value, Mapping):
            raise ValueError(f"not a mapping: {type(value).__name__}")
        return types.MappingProxyType({str(k): str(v) for k, v in value.items()})
    raise ValueError(f"unsupported setting type {hint!r}")


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing.

    >>> suggest("brokerz", FIELDS), suggest("zzz", FIELDS)
    (" (did you mean 'brokers'?)", '')
    """
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_nested(s: Settings) -> dict[str, dict[str, Any]]:
    return {sec: dict(vars(getattr(s, sec))) for sec in SECTIONS}


def _assemble(merged: Mapping[str, Mapping[str, Any]], problems: list[str]) -> Settings:
    """The settings from coerced values; every problem (earlier ones and the checks) raised
    together."""
    try:
        s = Settings(**{sec: SECTIONS[sec](**merged.get(sec, {})) for sec in SECTIONS})
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return s


def _build(
    nested: Mapping[str, Mapping[str, Any]], flat: Mapping[str, Any], source: str
) -> Settings:
    merged = {sec: dict(nested.get(sec, {})) for sec in SECTIONS}
    problems: list[str] = []
    for name, value in flat.items():
        if name in RETIRED:
            problems.append(retired(source, name))
            continue
        if name not in FIELDS:
            problems.append(f"{source}: unknown setting {name!r}{suggest(name, FIELDS)}")
            continue
        sec = FIELDS[name][0]
        try:
            merged[sec][name] = _coerce(value, _HINTS[sec][name], f"{source}: {name}")
        except ConfigError as exc:
            problems.extend(exc.problems)
    return _assemble(merged, problems)


def _read_yaml(path: Path, problems: list[str]) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or type(exc).__name__}")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not valid YAML: {exc}")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: the top level must be a mapping of sections")
        return {}
    nested: dict[str, dict[str, Any]] = {}
    for sec, body in data.items():
        if sec not in SECTIONS:
            problems.append(
                f"{path}: unknown section {sec!r}{suggest(str(sec), SECTIONS)} "
                f"(known: {', '.join(SECTIONS)})"
            )
            continue
        if not isinstance(body, dict):
            problems.append(f"{path}: section {sec!r} must be a mapping")
            continue
        for name, value in body.items():
            if name in RETIRED:
                problems.append(retired(str(path), name))
                continue
            if name not in FIELDS or FIELDS[name][0] != sec:
                where = f" (it belongs in section {FIELDS[name][0]!r})" if name in FIELDS else ""
                near = "" if where else suggest(str(name), _SECTION_FIELDS[sec])
                problems.append(f"{path}: unknown setting {sec}.{name}{near}{where}")
                continue
            try:
                nested.setdefault(sec, {})[name] = _coerce(
                    value, _HINTS[sec][name], f"{path}: {sec}.{name}"
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
    return nested


def load_yaml(path: Path) -> dict[str, dict[str, Any]]:
    """Read and type-check a settings file; errors name the file and the key, all at once."""
    problems: list[str] = []
    nested = _read_yaml(path, problems)
    if problems:
        raise ConfigError(problems)
    return nested


# FRAUDFLOW_* variables that are not settings: the settings file, and the test suite's own.
OTHER_VARIABLES = ("FRAUDFLOW_CONFIG", "FRAUDFLOW_TIMESCALEDB_INSTALL")


def _is_other_variable(key: str) -> bool:
    return key in OTHER_VARIABLES or key.startswith(ENV_PREFIX + "TEST_")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``FRAUDFLOW_*`` variable that names no setting, with the closest name.

    >>> unknown_variables({"FRAUDFLOW_BROKER": "h:9092", "FRAUDFLOW_SEED": "1", "HOME": "/"})
    ["FRAUDFLOW_BROKER is not a setting and is ignored (did you mean 'FRAUDFLOW_BROKERS'?)"]
    """
    known = [ENV_PREFIX + n.upper() for n in FIELDS]
    known += [ENV_PREFIX + n.upper() + "_FILE" for n, (_s, f) in FIELDS.items() if _secret(f)]
    out = []
    gone = {ENV_PREFIX + n.upper() for n in RETIRED}  # an error (_env_values), not a warning
    for key in sorted(environ):
        if (
            key.startswith(ENV_PREFIX)
            and key not in known
            and key not in gone
            and not _is_other_variable(key)
        ):
            out.append(f"{key} is not a setting and is ignored{suggest(key, known)}")
    return out


def _secret(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("secret"))


def env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``FRAUDFLOW_*`` variables that name a setting (others are ignored)."""
    problems: list[str] = []
    out = _env_values(environ, problems, {})
    if problems:
        raise ConfigError(problems)
    return out


def _env_values(
    environ: Mapping[str, str], problems: list[str], sources: dict[str, str]
) -> dict[str, str]:
    out = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in RETIRED and key == ENV_PREFIX + name.upper():
                problems.append(retired(f"environment: {key}", name))
            elif name in FIELDS:
                out[name] = value
                sources[name] = f"env {key}"
    for name, value in _secret_files(environ, set(out), problems).items():
        out[name] = value
        sources[name] = f"env {ENV_PREFIX}{name.upper()}_FILE"
    return out


def secret_files(environ: Mapping[str, str], given: set[str]) -> dict[str, str]:
    """``FRAUDFLOW_<SECRET>_FILE=path``: a secret setting read from a file (the Docker and
    Kubernetes secrets convention), one trailing newline removed. Errors name the
    variable and the path, never the content."""
    problems: list[str] = []
    out = _secret_files(environ, given, problems)
    if problems:
        raise ConfigError(problems)
    return out


def _secret_files(
    environ: Mapping[str, str], given: set[str], problems: list[str]
) -> dict[str, str]:
    out = {}
    for name, (_sec, f) in FIELDS.items():
        var = f"{ENV_PREFIX}{name.upper()}_FILE"
        if not _secret(f) or not environ.get(var):
            continue
        if name in given:
            problems.append(f"environment: both {ENV_PREFIX}{name.upper()} and {var} are set")
            continue
        try:
            text = Path(environ[var]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"environment: {var}: cannot read {environ[var]}: {type(exc).__name__}")
            continue
        text = text[:-1] if text.endswith("\n") else text
        out[name] = text[:-1] if text.endswith("\r") else text
    return out


_SECRET_KEY = re.compile(r"password|secret|passwd|token|credential|(^|[._])key([._]|$)", re.I)
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)|(password\s*=\s*)('[^']*'|\S*)", re.I)


def is_secret_key(key: str) -> bool:
    """Whether a setting or librdkafka key names a secret (``*password*``, ``*secret*``,
    ``*.key*``...).

    >>> [is_secret_key(k) for k in ("sasl.password", "ssl.key.location", "ssl_key", "keys")]
    [True, True, True, False]
    """
    return bool(_SECRET_KEY.search(key))


def _mask_dsn(m: re.Match[str]) -> str:
    return m.group(1) + "***" + m.group(3) if m.group(1) else m.group(4) + "***"


def masked(value: Any, key: str = "") -> Any:
    """``value`` as it may be printed: a ``Secret`` (or a value under a secret-like
    ``key``) gives ``***``, a mapping (librdkafka pass-through) is masked key by key, and
    a password inside any DSN/URL text is masked.

    >>> masked({"sasl.password": "pw", "acks": "all"})
    {'sasl.password': '***', 'acks': 'all'}
    >>> masked("x://u:pw@h"), masked(Secret("pw"))
    ('x://u:***@h', '***')
    """
    if value is None:
        return None
    if isinstance(value, Secret) or (key and is_secret_key(key)):
        return "***"
    if isinstance(value, Mapping):
        return {str(k): masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(masked(v) for v in value)
    if isinstance(value, str):
        return _DSN_PASSWORD.sub(_mask_dsn, value)
    return value


def _shown(v: Any) -> str:
    return ",".join(_fmt(x) for x in v) if isinstance(v, tuple) else _fmt(v)


def masked_lines(s: Settings) -> list[str]:
    """``section.name = value`` for every setting, secrets masked (``config --check``)."""
    return [line for _name, line in _lines(s)]


def differences(a: Settings, b: Settings) -> list[tuple[str, str, str]]:
    """``(section.name, value in a, value in b)`` for each setting that differs, masked."""
    return [
        (la.split(" = ", 1)[0], la.split(" = ", 1)[1], lb.split(" = ", 1)[1])
        for (_n, la), (_m, lb) in zip(_lines(a), _lines(b), strict=True)
        if la != lb
    ]


def _lines(s: Settings) -> list[tuple[str, str]]:
    return [
        (name, f"{sec}.{name} = {_shown(masked(getattr(getattr(s, sec), name)))}")
        for name, (sec, _f) in FIELDS.items()
    ]


@dataclass(frozen=True)
class Resolved:
    """Settings with where each value came from (``default``, ``file PATH``, ``env VAR``,
    ``flag --name``) and the warnings about ignored ``FRAUDFLOW_*`` variables."""

    settings: Settings
    sources: Mapping[str, str]
    warnings: tuple[str, ...]

    def rows(self, sections: Iterable[str] = ()) -> list[tuple[str, str, str]]:
        """``(section.name, masked value, source)`` for every setting not at its default,
        and every setting of ``sections`` whatever its source (a report's provenance)."""
        keep = set(sections)
        return [
            (line.split(" = ", 1)[0], line.split(" = ", 1)[1], src)
            for name, line in _lines(self.settings)
            if (src := self.sources.get(name, "default")) != "default" or FIELDS[name][0] in keep
        ]

    def effective_lines(self) -> list[str]:
        """``section.name = value  [source]`` for every setting, secrets masked."""
        rows = [(line, self.sources.get(name, "default")) for name, line in _lines(self.settings)]
        width = max(len(line) for line, _src in rows)
        return [f"{line:<{width}}  [{src}]" for line, src in rows]


def resolve(
    path: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Resolved:
    """YAML file (``FRAUDFLOW_CONFIG`` if no path), then environment, then flags; every
    problem of the three raised at once."""
    env = os.environ if environ is None else environ
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    problems: list[str] = []
    sources: dict[str, str] = {}
    merged: dict[str, dict[str, Any]] = {sec: {} for sec in SECTIONS}
    if path is not None:
        for sec, body in _read_yaml(path, problems).items():
            merged[sec].update(body)
            sources.update(dict.fromkeys(body, f"file {path}"))
    for name, value in _env_values(env, problems, sources).items():
        sec = FIELDS[name][0]
        where = f"environment: {sources[name].removeprefix('env ')}"
        try:
            merged[sec][name] = _coerce(value, _HINTS[sec][name], where)
        except ConfigError as exc:
            problems.extend(exc.problems)
    for name, value in (flags or {}).items():
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if name in RETIRED:
            problems.append(retired(f"flag {flag}", name))
            continue
        if name not in FIELDS:
            flags_known = ["--" + n.replace("_", "-") for n in FIELDS]
            problems.append(f"flag {flag}: unknown setting{suggest(flag, flags_known)}")
            continue
        sec = FIELDS[name][0]
        try:
            merged[sec][name] = _coerce(value, _HINTS[sec][name], f"flag {flag}")
            sources[name] = f"flag {flag}"
        except ConfigError as exc:
            problems.extend(exc.problems)
    try:
        s = _assemble(merged, problems)
    except ConfigError as exc:
        raise ConfigError([_with_source(p, sources) for p in exc.problems]) from None
    return Resolved(s, types.MappingProxyType(sources), tuple(unknown_variables(env)))


def _with_source(problem: str, sources: Mapping[str, str]) -> str:
    """A check's problem about settings that were given says where their values came from."""
    head = problem.split(":", 1)[0]
    named = [
        (name, src)
        for name, src in sources.items()
        if head in (FIELDS[name][0], f"{FIELDS[name][0]}.{name}")
        and re.search(rf"\b{name}\b", problem)
    ]
    if len(named) == 1:
        return f"{problem} (set by {named[0][1]})"
    if named:
        return f"{problem} ({'; '.join(f'{n} set by {src}' for n, src in named)})"
    return problem


def load_settings(
    path: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """YAML file (``FRAUDFLOW_CONFIG`` if no path), then environment, then flags. Unknown
    ``FRAUDFLOW_*`` variables are warned about (logger ``fraudflow.config``), one line each."""
    r = resolve(path, flags, environ)
    for line in r.warnings:
        logging.getLogger("fraudflow.config").warning("%s", line)
    return r.settings


def describe() -> list[tuple[str, str, str, str]]:
    """(section.name, env var, default, doc) for every setting, for docs and ``--help``."""
    rows = []
    for name, (sec, f) in FIELDS.items():
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "-"
        if isinstance(default, tuple):
            default = ",".join(_fmt(d) for d in default)
        rows.append(
            (f"{sec}.{name}", ENV_PREFIX + name.upper(), _fmt(default), f.metadata.get("doc", ""))
        )
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, timedelta):
        secs = v.total_seconds()
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if secs >= size and secs % size == 0:
                return f"{int(secs // size)}{unit}"
        return f"{secs:g}s"
    if isinstance(v, types.MappingProxyType | dict):
        return ",".join(f"{k}={x}" for k, x in v.items()) or "{}"
    if isinstance(v, Path) and v == DEFAULT_RULES_DIR:
        return "<bundled rules>"
    return str(v)

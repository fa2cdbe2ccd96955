"""Entity risk: smoothed confirmed-fraud rates per merchant, device, country, user.

For an entity ``e``, a window ``W`` and the label delay ``D``, at time ``t``:
the transactions of ``e`` with event time in ``[t - D - W, t - D)`` and the
confirmed frauds among them (labels known at the cutoff). Shifting the window
back by the delay keeps it to transactions whose labels have had time to
arrive, so the rate means the same in training and in serving. The smoothed
rate is ``(frauds + m * p0) / (n + m)`` with ``p0`` the overall rate of the
same window and ``m`` the prior strength: an entity with little evidence
stays near the overall rate.

Training computes the features of every row as of the start of its retrain
period (``t`` rounded down to ``step``), which is what serving sees: the risk
tables published with a model are the same formula at its cutoff, one entry
per entity (unknown entities: ``p0``, no frauds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DAY = 86400.0
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RiskParams:
    fields: tuple[str, ...] = ("user_id", "merchant_id", "device_id", "country")
    windows: tuple[int, ...] = (1, 7, 30)  # days
    delay: float = 7 * DAY  # seconds: the label delay the windows are shifted by
    prior_strength: float = 20.0

    def names(self, field: str) -> tuple[str, ...]:
        """The risk features of one field: rate and frauds per window."""
        base = field.removesuffix("_id")
        return tuple(
            name for w in self.windows for name in (f"risk_{base}_{w}d", f"risk_{base}_{w}d_frauds")
        )

    @property
    def all_names(self) -> tuple[str, ...]:
        return tuple(n for f in self.fields for n in self.names(f))

    def to_dict(self) -> dict[str, object]:
        return {
            "fields": list(self.fields),
            "windows": list(self.windows),
            "delay": self.delay,
            "prior_strength": self.prior_strength,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> RiskParams:
        return cls(
            fields=tuple(str(x) for x in d["fields"]),  # type: ignore[attr-defined]
            windows=tuple(int(x) for x in d["windows"]),  # type: ignore[attr-defined]
            delay=float(d["delay"]),  # type: ignore[arg-type]
            prior_strength=float(d["prior_strength"]),  # type: ignore[arg-type]
        )


def encode(entities: Sequence[str | None]) -> tuple[npt.NDArray[np.object_], I64]:
    """(vocabulary, codes) of a column of entities; code -1 for a missing one."""
    values = np.array([e if e is not None else "" for e in entities], dtype=object)
    vocab, codes = np.unique(values, return_inverse=True)
    codes = codes.astype(np.int64)
    if len(vocab) and vocab[0] == "":
        codes -= 1  # "" sorts first: missing becomes -1
        vocab = vocab[1:]
    return vocab, codes


class History:
    """Transactions and known frauds of one field, indexed for window counts.

    ``codes`` index ``vocab`` (-1: missing); ``fraud``: the label known at the cutoff.
    """

    def __init__(
        self, vocab: npt.NDArray[np.object_], codes: I64, ts: F64, fraud: npt.NDArray[np.bool_]
    ) -> None:
        self.vocab = vocab
        self.index = {str(v): i for i, v in enumerate(vocab)}
        self.t0 = float(ts.min()) if len(ts) else 0.0
        self.span = (float(ts.max()) - self.t0 if len(ts) else 0.0) + 400 * DAY
        keep = codes >= 0
        keys = codes[keep].astype(np.float64) * self.span + (ts[keep] - self.t0)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.frauds = np.concatenate(([0], np.cumsum(fraud[keep][order].astype(np.int64))))
        # the overall counts: every transaction, keyed by time only
        gorder = np.argsort(ts, kind="stable")
        self.gts = ts[gorder]
        self.gfrauds = np.concatenate(([0], np.cumsum(fraud[gorder].astype(np.int64))))

    def codes(self, entities: Sequence[str | None]) -> I64:
        """Codes of ``entities`` (-1: unknown or missing)."""
        get = self.index.get
        return np.array([-1 if e is None else get(e, -1) for e in entities], dtype=np.int64)

    def counts(self, codes: I64, t: F64, lo: float, hi: float) -> tuple[I64, I64]:
        """(transactions, frauds) of each entity with event time in ``[t - lo, t - hi)``."""
        base = codes.astype(np.float64) * self.span - self.t0
        a = np.searchsorted(self.keys, base + t - lo, "left")
        b = np.searchsorted(self.keys, base + t - hi, "left")
        n = (b - a).astype(np.int64)
        f = self.frauds[b] - self.frauds[a]
        unknown = codes < 0
        n[unknown] = 0
        f[unknown] = 0
        return n, f

    def totals(self, t: F64, lo: float, hi: float) -> tuple[I64, I64]:
        a = np.searchsorted(self.gts, t - lo, "left")
        b = np.searchsorted(self.gts, t - hi, "left")
        return (b - a).astype(np.int64), self.gfrauds[b] - self.gfrauds[a]


def risk_columns(
    p: RiskParams,
    history: dict[str, History],
    codes: dict[str, I64],
    t: F64,
) -> dict[str, F64]:
    """The risk features of rows with these entity codes (:func:`encode`), as of times ``t``."""
    out: dict[str, F64] = {}
    m = p.prior_strength
    priors = {}
    any_h = next(iter(history.values()))
    for w in p.windows:
        n0, f0 = any_h.totals(t, p.delay + w * DAY, p.delay)
        priors[w] = np.where(n0 > 0, f0 / np.maximum(n0, 1), 0.0)
    for field in p.fields:
        h = history[field]
        names = p.names(field)
        for i, w in enumerate(p.windows):
            n, f = h.counts(codes[field], t, p.delay + w * DAY, p.delay)
            den = n + m
            out[names[2 * i]] = np.where(
                den > 0, (f + m * priors[w]) / np.maximum(den, 1e-12), priors[w]
            )
            out[names[2 * i + 1]] = f.astype(np.float64)
    return out


@dataclass(frozen=True)
class RiskTables:
    """Risk features per entity as of a cutoff; unknown entities get the priors."""

    params: RiskParams
    cutoff: float
    priors: tuple[float, ...]  # per field-name pair: the value of an unknown entity
    tables: dict[str, dict[str, tuple[float, ...]]]  # field -> entity -> values (names order)
    # serving's lookup, built once: field -> (entity -> row, rows + the priors as the last)
    _lookup: dict[str, tuple[dict[str, int], F64]] = dataclasses.field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        width = len(self.priors)
        for name in self.params.fields:
            table = self.tables.get(name, {})
            mat = np.array([*table.values(), self.priors], dtype=np.float64).reshape(-1, width)
            self._lookup[name] = ({e: i for i, e in enumerate(table)}, mat)

    def default(self) -> tuple[float, ...]:
        return self.priors

    @classmethod
    def build(cls, p: RiskParams, history: dict[str, History], cutoff: float) -> RiskTables:
        tables: dict[str, dict[str, tuple[float, ...]]] = {}
        any_h = next(iter(history.values()))
        priors: list[float] = []
        for w in p.windows:
            n0, f0 = any_h.totals(np.array([cutoff]), p.delay + w * DAY, p.delay)
            priors += [float(f0[0] / n0[0]) if n0[0] else 0.0, 0.0]
        for field in p.fields:
            h = history[field]
            ents = [str(v) for v in h.vocab]
            if not ents:
                tables[field] = {}
                continue
            cols = risk_columns(
                RiskParams((field,), p.windows, p.delay, p.prior_strength),
                {field: h},
                {field: np.arange(len(ents), dtype=np.int64)},
                np.full(len(ents), cutoff),
            )
            names = p.names(field)
            mat = np.column_stack([cols[n] for n in names])
            # only entities with evidence in some window differ from the default
            tables[field] = {
                e: tuple(float(x) for x in row)
                for e, row in zip(ents, mat, strict=True)
                if row[1::2].any() or not np.allclose(row[0::2], priors[0::2])
            }
        return cls(p, cutoff, tuple(priors), tables)

    def columns(self, entities: Mapping[str, Sequence[str | None]], n: int) -> dict[str, F64]:
        """The risk features of ``n`` rows from the tables (one dict lookup per row and field)."""
        out: dict[str, F64] = {}
        for name in self.params.fields:
            index, mat = self._lookup[name]
            get, unknown = index.get, len(mat) - 1  # the priors: unknown or missing (None)
            at = [unknown if e is None else get(e, unknown) for e in entities[name]]
            rows = mat[np.array(at, dtype=np.intp)]
            rows = rows.reshape(n, mat.shape[1])
            for j, col in enumerate(self.params.names(name)):
                out[col] = rows[:, j]
        return out

"""Labels read before their transactions (a catch-up run): they wait, bounded, and apply."""

from __future__ import annotations

import copy
import pickle
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from fraudflow.config.settings import ConfigError, FeatureSettings, FeedbackSettings, load_settings
from fraudflow.operators.detectors.feedback import (
    HELD,
    FeedbackParams,
    apply_label,
    enrich,
    feedback_batch,
    flush_early,
)
from fraudflow.operators.features.catalogue import feature_catalogue
from fraudflow.records import DeadLetter, FeatureRow, Label, Transaction
from fraudflow.state import snapshot
from fraudflow.state.feedback import FeedbackState

T0 = 1_767_225_600.0
HOUR = 3600.0


def params(**kw: Any) -> FeedbackParams:
    fs = FeedbackSettings(feedback=True, **kw)
    return FeedbackParams.from_settings(fs, feature_catalogue(FeatureSettings().windows, fs))


def early(**kw: Any) -> FeedbackParams:
    return params(early_label_horizon=timedelta(hours=1), **kw)


def row(tid: str, ts: float = T0, merchant: str = "m1") -> FeatureRow:
    t = Transaction(tid, "u1", 20.0, ts, "EUR", merchant_id=merchant, country="DE")
    return FeatureRow(t, {"amount": 20.0, "hst_score": 0.1, "txn_count": 3, "hour": 12})


def label(tid: str, y: int, at: float = T0) -> Label:
    return Label(tid, y, at, value=tid.encode(), topic="labels", partition=0)


def codes(out: list[Any]) -> list[str]:
    return [d.code for d in out if isinstance(d, DeadLetter)]


def test_a_label_ahead_of_its_transaction_waits_and_applies_after_the_score() -> None:
    p = early()
    st = p.new_state()
    out, applied, frauds = feedback_batch(st, [label("t1", 1)], p, T0)
    assert (out, applied, frauds) == ([], 0, 0)
    assert list(st.early) == ["t1"]
    before = copy.deepcopy(st)
    r = row("t1")
    out, applied, frauds = feedback_batch(st, [r], p, T0 + 60)
    assert out == [r]
    assert (applied, frauds) == (1, 1)
    assert not st.early
    assert st.pending["t1"][4] == 1
    assert st.frauds_learned == 1
    # scored before its label was learned: the same features as with no label waiting
    r2 = row("t1")
    enrich(before, r2, p)
    assert r2.features == r.features


def test_the_same_labels_in_either_order_give_the_same_state() -> None:
    p = early()
    items: list[FeatureRow | Label] = [row("t1"), row("t2"), label("t1", 1), label("t2", 0)]
    a, b = p.new_state(), p.new_state()
    feedback_batch(a, items, p, T0)
    feedback_batch(b, [items[2], items[3]], p, T0)
    feedback_batch(b, [row("t1"), row("t2")], p, T0)
    assert (a.frauds_learned, a.legit_learned) == (b.frauds_learned, b.legit_learned) == (1, 1)
    assert a.entities.counts == b.entities.counts
    assert [a.pending[t][4] for t in ("t1", "t2")] == [b.pending[t][4] for t in ("t1", "t2")]


def test_a_label_whose_transaction_never_comes_is_dead_lettered_after_the_horizon() -> None:
    p = early()
    st = p.new_state()
    feedback_batch(st, [label("never", 1), label("never", 0, T0 + 5)], p, T0)
    out, _, _ = feedback_batch(st, [row("other")], p, T0 + HOUR - 1)
    assert codes(out) == []
    out, applied, _ = feedback_batch(st, [], p, T0 + HOUR)
    assert codes(out) == ["label_unmatched", "label_unmatched"]
    assert applied == 0
    assert all(d.step == "feedback" and d.value == b"never" for d in out)
    assert not st.early


def test_waiting_labels_are_bounded_oldest_first() -> None:
    p = early(max_early_labels=2)
    st = p.new_state()
    out, _, _ = feedback_batch(st, [label("a", 1), label("b", 1), label("c", 1)], p, T0)
    assert codes(out) == ["label_unmatched"]
    assert out[0].value == b"a"
    assert list(st.early) == ["b", "c"]


def test_the_end_of_the_input_dead_letters_what_still_waits() -> None:
    p = early()
    st = p.new_state()
    feedback_batch(st, [label("x", 1), label("y", 0)], p, T0)
    dead = flush_early(st, T0 + 1)
    assert [(d.code, d.value) for d in dead] == [
        ("label_unmatched", b"x"),
        ("label_unmatched", b"y"),
    ]
    assert not st.early
    assert flush_early(st, T0 + 2) == []


def test_without_a_horizon_an_unknown_label_is_dead_lettered_at_once() -> None:
    p = params()
    st = p.new_state()
    out, applied, _ = feedback_batch(st, [label("nope", 1)], p, T0)
    assert codes(out) == ["label_unknown_transaction"]
    assert applied == 0
    assert not st.early


def test_an_expired_transaction_label_is_still_label_expired() -> None:
    p = early(label_horizon=timedelta(days=1), max_pending=1)
    st = p.new_state()
    feedback_batch(st, [row("old"), row("new", T0 + 10)], p, T0)
    assert codes(feedback_batch(st, [label("old", 1)], p, T0)[0]) == ["label_expired"]


def test_waiting_labels_survive_a_snapshot_and_an_old_snapshot_loads() -> None:
    p = early()
    st = p.new_state()
    feedback_batch(st, [label("t1", 1)], p, T0)
    back = snapshot.restore(snapshot.dump(st))
    assert isinstance(back, FeedbackState)
    assert list(back.early) == ["t1"]
    _, applied, _ = feedback_batch(back, [row("t1")], p, T0 + 1)
    assert applied == 1
    # a state pickled before the early labels existed: no 'early' slot in its state
    old = p.new_state()
    del old.early
    again = pickle.loads(pickle.dumps(old))
    assert again.early == {}


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.tuples(hs.sampled_from(["row", "label"]), hs.integers(0, 5),
                          hs.integers(0, 1), hs.integers(0, 3)), max_size=40))  # fmt: skip
def test_every_label_is_counted_once(events: list[tuple[str, int, int, int]]) -> None:
    """received = applied + dead-lettered + waiting, in any arrival order, batch by batch."""
    p = early(max_early_labels=3)
    st = p.new_state()
    received = applied = dead = 0
    batch: list[FeatureRow | Label] = []
    now = T0
    for kind, i, y, gap in events:
        if kind == "row":
            batch.append(row(f"t{i}", T0 + i))
        else:
            batch.append(label(f"t{i}", y, T0 + i))
            received += 1
        if gap == 0:
            now += 1800.0
            out, n, _ = feedback_batch(st, batch, p, now)
            applied += n
            dead += len(codes(out))
            batch = []
    out, n, _ = feedback_batch(st, batch, p, now)
    applied, dead = applied + n, dead + len(codes(out))
    assert received == applied + dead + sum(len(v[1]) for v in st.early.values())
    assert received == applied + dead + len(flush_early(st, now))


def test_apply_label_says_held_only_with_a_horizon() -> None:
    st = early().new_state()
    assert apply_label(st, label("z", 1), early(), T0) is HELD
    dead = apply_label(st, label("z", 1), params(), T0)
    assert isinstance(dead, DeadLetter)
    assert dead.code == "label_unknown_transaction"


def test_settings_refuse_no_room_for_early_labels() -> None:
    with pytest.raises(ConfigError, match="max_early_labels"):
        load_settings(environ={"FRAUDFLOW_MAX_EARLY_LABELS": "0"})
    with pytest.raises(ConfigError, match="EARLY_LABEL_HORIZON"):
        load_settings(environ={"FRAUDFLOW_EARLY_LABEL_HORIZON": "-1s"})

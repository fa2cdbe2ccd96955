"""The contract every stateful step of the flow keeps (issue 14), checked the same way for
each: ShardLogic (features + the shard's trees) and BudgetLogic.

- a snapshot taken mid-stream and restored continues exactly as the step that never stopped;
- the same input gives the same output (the models are seeded);
- the state stays bounded: idle users are swept and rolling windows are capped, so a
  snapshot does not grow with the number of events or users seen.

The steps are driven as Bytewax drives them (``on_batch``, ``on_notify``, ``snapshot``,
then a new logic built from the snapshot); the outputs are compared as pickles, so NaN
features and float bits count.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from bytewax.operators import StatefulBatchLogic

from fraudflow.config.settings import Settings
from fraudflow.observability.stats import RunStats
from fraudflow.operators.decide.budget import AlertBudget
from fraudflow.operators.decide.step import BudgetLogic
from fraudflow.operators.detectors import step as detectors_step
from fraudflow.operators.detectors.step import ShardLogic
from fraudflow.operators.features.user import FeatureParams
from fraudflow.records import Transaction
from fraudflow.state import snapshot
from tests.unit.operators.test_budget import stream as budget_stream

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SETTINGS = Settings().replace(hst_warmup=50, hst_window=50, calibration_window=300)
Logic = StatefulBatchLogic[Any, Any, bytes | None]


def transactions(n: int, seed: int, *, users: int = 30, step: float = 600.0) -> list[Transaction]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        u = rnd.randrange(users)
        out.append(
            Transaction(
                f"t{seed}-{i}",
                f"u{u}",
                round(rnd.lognormvariate(3, 0.8), 2),
                T0 + step * i,
                "EUR",
                merchant_id=f"m{rnd.randrange(8)}",
                country=rnd.choice(["DE", "FR", "DE", "US"]),
                device_id=f"d{u}",
                topic="transactions",
                partition=0,
                offset=i,
            )
        )
    return out


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def shard(blob: bytes | None) -> ShardLogic:
    fp = FeatureParams.from_settings(SETTINGS.features, SETTINGS.validation)
    return ShardLogic(fp, SETTINGS.model, snapshot.restore(blob), True, RunStats(), clock=None)


def budget(blob: bytes | None) -> BudgetLogic:
    return BudgetLogic(snapshot.restore(blob) or AlertBudget(0.05, 300), True)


def shard_batches(n: int = 1200, seed: int = 1) -> list[list[Any]]:
    return chunks(list(transactions(n, seed)), 40)


def budget_batches(n: int = 3000, seed: int = 3) -> list[list[Any]]:
    return chunks(budget_stream(n, seed), 64)


@dataclass(frozen=True)
class Case:
    make: Callable[[bytes | None], Logic]
    batches: Callable[[], list[list[Any]]]  # a fresh copy each call: steps mutate records


CASES = {
    "shard": Case(shard, shard_batches),
    "budget": Case(budget, budget_batches),
}


def run(logic: Logic, batches: list[list[Any]]) -> list[bytes]:
    return [pickle.dumps(logic.on_batch(b)[0]) for b in batches]


@pytest.mark.parametrize("name", CASES)
def test_the_same_input_gives_the_same_output(name: str) -> None:
    case = CASES[name]
    first, second = run(case.make(None), case.batches()), run(case.make(None), case.batches())
    assert first == second
    assert any(len(b) > len(pickle.dumps([])) for b in first)  # the step did emit something


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("cut", [1, 0.5, -1])
def test_a_snapshot_taken_mid_stream_continues_identically(name: str, cut: float) -> None:
    case = CASES[name]
    batches = case.batches()
    k = int(cut) if cut >= 1 else len(batches) - 1 if cut < 0 else int(len(batches) * cut)
    unbroken = run(case.make(None), case.batches())
    before = case.make(None)
    assert run(before, batches[:k]) == unbroken[:k]
    blob = before.snapshot()
    assert blob is not None
    after = case.make(blob)
    assert after is not before
    assert run(after, batches[k:]) == unbroken[k:]


def sizes(logic: Logic, batches: list[list[Any]], every: int) -> Iterator[int]:
    for i, b in enumerate(batches, 1):
        logic.on_batch(b)
        if i % every == 0:
            blob = logic.snapshot()
            assert blob is not None
            yield len(blob)


def bounded(sizes: list[int]) -> bool:
    """The second half of the run never snapshots more than 10 % above the first half's peak."""
    half = len(sizes) // 2
    return max(sizes[half:]) <= 1.1 * max(sizes[:half])


def test_shard_state_stays_bounded_as_users_go_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waves of new users, each going idle: the sweep drops them, the snapshot stays flat."""
    wall = [T0]
    monkeypatch.setattr(detectors_step, "time", SimpleNamespace(time=lambda: wall[0]))
    logic = shard(None)
    idle = logic.fp.idle
    got = []
    for wave in range(12):
        txns = transactions(600, 100 + wave, users=200, step=60.0)
        for t in txns:
            t.user_id = f"w{wave}-{t.user_id}"
            t.ts += wave * 600 * 60.0
        for batch in chunks(txns, 50):
            logic.on_batch(batch)
        assert len(logic.state.users) <= 200
        wall[0] += idle + 1
        logic.on_notify()
        assert logic.state.users == {}
        blob = logic.snapshot()
        assert blob is not None
        got.append(len(blob))
    assert bounded(got), got


def test_shard_state_stays_bounded_with_events_of_one_user() -> None:
    txns = transactions(6000, 5, users=1, step=3600.0)  # 250 days of one user, hourly
    assert bounded(list(sizes(shard(None), chunks(txns, 50), every=10))), "one user's state grows"


def test_budget_state_stays_bounded() -> None:
    assert bounded(list(sizes(budget(None), budget_batches(12000, 8), every=20)))

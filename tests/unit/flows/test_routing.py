"""Our copy of Bytewax's key routing predicts where Bytewax puts each key, and
shard keys spread partitions over workers."""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, cluster_main

from fraudflow.operators.ingest.routing import SPREAD, rust_str_hash, shard_key


def owners(keys: list[str], workers: int) -> dict[str, int]:
    """Which worker Bytewax runs each key's state on."""
    seen: dict[str, int] = {}
    flow = Dataflow("routing")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(keys)), lambda k: k)
    state = op.stateful_map("state", keyed, lambda s, v: (s, v))

    def record(_step: str, item: Any, _epoch: int, worker: int) -> None:
        seen[item[0]] = worker

    op.inspect_debug("where", state, record)
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return seen


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_hash_predicts_bytewax_routing(workers: int) -> None:
    keys = [f"k{i}-{'x' * (i % 19)}" for i in range(60)]  # lengths across the 8-byte blocks
    got = owners(keys, workers)
    assert got == {k: rust_str_hash(k) % workers for k in keys}


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_partitions_spread_over_workers(workers: int) -> None:
    keys = [shard_key("transactions", p) for p in range(workers * 2)]
    got = owners(keys, workers)
    assert [got[k] for k in keys] == [p % workers for p in range(workers * 2)]


def test_every_cluster_size_up_to_ten_divides_the_spread() -> None:
    assert all(SPREAD % w == 0 for w in range(1, 11))

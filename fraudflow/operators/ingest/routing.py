"""Shard keys that spread input partitions evenly over Bytewax workers.

Bytewax sends a keyed item to worker ``h(key) % W``, where ``h`` is Rust's
``DefaultHasher`` (SipHash-1-3 with zero keys) over the key string, and ``W``
the number of workers in the cluster. Keys like ``"topic#3"`` therefore land
wherever their hash says: measured, all four partitions of one topic went to
the same worker of two, and the second process only parsed. We reproduce the
hash here (tested against Bytewax itself) and give partition ``p`` the key
``"topic#p#s"`` with the smallest salt ``s`` for which ``h(key) % 2520 ==
p % 2520``. As 2520 is a multiple of every cluster size from 1 to 10 (and
12, 14, 15, 18, 20, ...), partition ``p`` is then owned by worker ``p % W``:
a topic with at least as many partitions as workers keeps every worker busy.

>>> shard_key("transactions", 3).startswith("transactions#3#")
True
>>> rust_str_hash(shard_key("transactions", 3)) % 4, rust_str_hash(shard_key("t", 5)) % 6
(3, 5)
"""

from __future__ import annotations

from functools import lru_cache

_MASK = (1 << 64) - 1
SPREAD = 2520  # lcm(1..10)


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3, as Rust's ``std::hash::DefaultHasher``."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        sip_round()
        v0 ^= m
    b = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= b
    sip_round()
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(3):
        sip_round()
    return (v0 ^ v1 ^ v2 ^ v3) & _MASK


def rust_str_hash(s: str) -> int:
    """Rust's ``Hash`` of a ``String`` (its bytes, then 0xFF) with ``DefaultHasher``."""
    return siphash13(s.encode("utf-8") + b"\xff")


@lru_cache(maxsize=4096)
def shard_key(topic: str, partition: int) -> str:
    """The key of a partition's shard: owned by worker ``partition % W``."""
    want = partition % SPREAD
    salt = 0
    while rust_str_hash(f"{topic}#{partition}#{salt}") % SPREAD != want:
        salt += 1
    return f"{topic}#{partition}#{salt}"

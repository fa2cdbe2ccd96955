"""DeadLetter serialization: bounded whatever the bytes, prefix and digest true;
OutputPolicy pseudonyms at the output edge."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudflow.config.settings import ConfigError, Settings
from fraudflow.records import (
    DLQ_MESSAGE_MAX,
    DeadLetter,
    Decision,
    OutputPolicy,
    Reason,
    Transaction,
    dead_letter_max_bytes,
)

# bytes that stress every encoding: escapes (6x), multi-byte UTF-8, invalid UTF-8
_nasty = (
    st.binary(max_size=3000)
    | st.text(max_size=1500).map(lambda t: t.encode("utf-8"))
    | (
        st.lists(
            st.sampled_from([b'"', b"\x00", b"\\", b"\xe2\x82\xac", b"\xff", b"a"]), max_size=3000
        ).map(b"".join)
    )
)


def kept_bytes(d: dict[str, object]) -> bytes:
    v = d["value"]
    assert isinstance(v, str)
    return base64.b64decode(v) if d["value_encoding"] == "base64" else v.encode("utf-8")


def check(dl: DeadLetter, policy: OutputPolicy) -> dict[str, object]:
    out = dl.to_json(policy)
    key = dl.key_bytes(policy) or b""
    assert len(out) + len(key) <= dead_letter_max_bytes(policy.payload_bytes())
    d = orjson.loads(out)
    n = policy.payload_bytes()
    if dl.value is None:
        assert d["value"] is None
        assert d["value_bytes"] is None
        assert d["value_digest"] is None
    else:
        kept = kept_bytes(d)
        assert dl.value.startswith(kept)
        assert len(kept) <= n
        # a text prefix leaves out at most a character cut in two
        assert len(kept) >= min(n, len(dl.value)) - (3 if d["value_encoding"] == "utf-8" else 0)
        assert d["value_bytes"] == len(dl.value)
        assert d["value_truncated"] == (len(kept) < len(dl.value))
        assert d["value_digest"] == policy.digest(dl.value)
    if dl.key is not None:
        assert isinstance(d["key_base64"], str)
        assert base64.b64decode(d["key_base64"]) == dl.key[:n]
        assert d["key_bytes"] == len(dl.key)
        assert d["key_digest"] == policy.digest(dl.key)
    return d


@settings(max_examples=300, deadline=None)
@given(
    value=st.none() | _nasty,
    key=st.none() | _nasty,
    n=st.integers(0, 2048),
    message=st.text(max_size=3 * DLQ_MESSAGE_MAX),
    topic=st.text(max_size=300),
)
def test_any_bytes_give_a_bounded_true_dead_letter(
    value: bytes | None, key: bytes | None, n: int, message: str, topic: str
) -> None:
    dl = DeadLetter("bad_json", message, value, key, topic, 3, 9, 0.0)
    d = check(dl, OutputPolicy(max_payload_bytes=n))
    assert d["digest"] == "sha256"
    if value is not None:
        assert d["value_digest"] == hashlib.sha256(value).hexdigest()


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b'"' * 600_000, b"u1"),
        (bytes(range(256)) * 3200, b"u1"),
        (b"{}", b"k" * 1_000_000),
        (b"x" * 10_000_000, None),
        (b"\x00" * 1_000_000, b"\x00" * 1_000_000),
    ],
)
@pytest.mark.parametrize("n", [0, 16384])
def test_the_audit_inputs_fit_the_producer_limit(value: bytes, key: bytes | None, n: int) -> None:
    check(
        DeadLetter("oversize", "m", value, key, "tx", 0, 1, 0.0), OutputPolicy(max_payload_bytes=n)
    )
    assert dead_letter_max_bytes(n) + 1024 <= 1_000_000


def test_a_character_cut_in_two_is_left_out() -> None:
    d = DeadLetter("oversize", "m", "€€".encode(), None, "tx", 0, 1, 0.0)
    r = d.to_dict(OutputPolicy(max_payload_bytes=4))
    assert (r["value"], r["value_encoding"], r["value_truncated"]) == ("€", "utf-8", True)


def test_start_up_refuses_a_payload_that_cannot_fit() -> None:
    with pytest.raises(ConfigError, match="dlq_max_payload_bytes"):
        Settings().replace(dlq_max_payload_bytes=200_000)
    with pytest.raises(ConfigError, match="dlq_max_payload_bytes"):
        Settings().replace(dlq_max_payload_bytes=16384, kafka_config="message.max.bytes=100000")
    with pytest.raises(ConfigError, match="dlq_max_payload_bytes"):
        Settings().replace(dlq_max_payload_bytes=-1)
    assert Settings().replace(dlq_max_payload_bytes=0).kafka.dlq_max_payload_bytes == 0
    big = Settings().replace(
        dlq_max_payload_bytes=200_000, kafka_config="message.max.bytes=2000000"
    )
    assert big.kafka.dlq_max_payload_bytes == 200_000


def test_pseudonymize_key_is_checked_and_hidden() -> None:
    with pytest.raises(ConfigError, match="pseudonymize_key") as exc:
        Settings().replace(pseudonymize_key="short")
    assert "short" not in str(exc.value)
    s = Settings().replace(pseudonymize_key="0123456789abcdef-key")
    assert "0123456789abcdef-key" not in repr(s)
    assert "0123456789abcdef-key" not in repr(
        OutputPolicy(pseudonymize_key=b"0123456789abcdef-key")
    )


KEY = b"0123456789abcdef-key"


def mac(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


@settings(max_examples=100, deadline=None)
@given(value=_nasty, user=st.text(min_size=1, max_size=40))
def test_pseudonymised_dead_letters_carry_no_payload_unless_asked(value: bytes, user: str) -> None:
    key = user.encode()
    dl = DeadLetter("bad_json", "m", value, key, "tx", 0, 1, 0.0)
    d = check(dl, OutputPolicy(pseudonymize_key=KEY))
    assert d["value"] == ""
    assert d["key_base64"] == ""
    assert d["digest"] == "hmac-sha256"
    assert d["key_digest"] == mac(user)
    assert dl.key_bytes(OutputPolicy(pseudonymize_key=KEY)) == mac(user)[:32].encode()
    with_payload = check(dl, OutputPolicy(pseudonymize_key=KEY, payload_with_pseudonyms=True))
    assert kept_bytes(with_payload) == value[: len(kept_bytes(with_payload))]


def test_alerts_carry_pseudonyms_of_user_device_and_ip() -> None:
    t = Transaction("t1", "alice", 10.0, 0.0, "EUR", merchant_id="m1", device_id="d1", ip="1.2.3.4")
    reasons = [Reason("RULE:shared_device", 0.5, {"device_id": "d1", "ip": "1.2.3.4", "rate": 0.3})]
    dec = Decision("a1", t, 0.9, "block", {}, [], reasons, "r", "m")
    p = OutputPolicy(pseudonymize_key=KEY)
    out = dec.to_dict(p)
    assert out["user_id"] == mac("alice")[:32]
    assert out["reasons"][0]["detail"] == {
        "device_id": mac("d1")[:32],
        "ip": mac("1.2.3.4")[:32],
        "rate": 0.3,
    }
    assert (out["transaction_id"], out["merchant_id"]) == ("t1", "m1")
    assert dec.key_bytes(p) == mac("alice")[:32].encode()
    assert b"alice" not in dec.to_json(p)
    assert b"1.2.3.4" not in dec.to_json(p)
    # off by default: the plain record is unchanged
    assert dec.to_dict()["user_id"] == "alice"
    assert dec.key_bytes() == b"alice"
    assert reasons[0].detail["ip"] == "1.2.3.4"

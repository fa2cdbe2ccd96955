"""The scaled model inputs stay in [0, 1] for any feature values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fraudflow.operators.detectors.hst import HST_INPUTS, hst_inputs

finite = st.floats(allow_nan=False, allow_infinity=False)
nonneg = st.floats(min_value=0, max_value=1e12)


@given(
    nonneg,
    finite.filter(lambda v: abs(v) < 1e6),
    st.integers(1, 10_000),
    nonneg,
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.floats(0, 1),
    nonneg,
)
def test_inputs_in_unit_interval(
    amount: float,
    z: float,
    count: int,
    gap: float,
    dev: bool,
    ctry: bool,
    merch: bool,
    share: float,
    kmh: float,
) -> None:
    f = {
        "amount": amount,
        "amount_z": z,
        "count_1m": count,
        "secs_since_prev": gap,
        "new_device": dev,
        "new_country": ctry,
        "new_merchant": merch,
        "hour_share": share,
        "travel_kmh": kmh,
    }
    x = hst_inputs(f)
    assert set(x) == set(HST_INPUTS)
    assert all(0.0 <= v <= 1.0 for v in x.values()), x

"""batch_columns: a batch's columns without pydantic only when pydantic would accept the body
with the same values; anything else is left to pydantic (None)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.core.schemas import EXAMPLE_FLIGHT, Flight
from flightdelay.serving.request_checks import batch_columns

MANY = TypeAdapter(Annotated[list[Flight], Field(min_length=1)])


def pydantic_columns(body: bytes) -> dict[str, list[Any]] | None:
    """What the service's schema gives for the body, column by column (None: refused)."""
    try:
        rows = MANY.validate_json(body)
    except ValidationError:
        return None
    return {c: [row[c] for row in rows] for c in RAW_COLUMNS}


def assert_same_as_pydantic(body: bytes) -> dict[str, list[Any]] | None:
    fast = batch_columns(body)
    if fast is not None:
        want = pydantic_columns(body)
        assert want is not None, body
        assert fast == want
        for name in RAW_COLUMNS:  # the same Python types too (1400.0, not 1400)
            assert list(map(type, fast[name])) == list(map(type, want[name])), name
    return fast


def test_batch_columns_of_valid_rows_are_pydantic_columns() -> None:
    rows = [EXAMPLE_FLIGHT, EXAMPLE_FLIGHT | {"tailnum": None, "distance": 1400.5, "day": 30}]
    assert assert_same_as_pydantic(json.dumps(rows).encode()) is not None


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{}",
        b"[1]",
        b"[[]]",
        b"not json",
        json.dumps([EXAMPLE_FLIGHT | {"year": "2013"}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"day": 3.0}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"month": True}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"month": 13}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"year": 2**70}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"distance": 0}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"distance": None}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"carrier": "ua"}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"carrier": None}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"carrier": "UA\n"}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"tailnum": "N1234567"}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"extra": 1}]).encode(),
        json.dumps([{k: v for k, v in EXAMPLE_FLIGHT.items() if k != "dest"}]).encode(),
        json.dumps([{k: v for k, v in EXAMPLE_FLIGHT.items() if k != "dest"} | {"x": 1}]).encode(),
        json.dumps([EXAMPLE_FLIGHT | {"dest": "A:B"}]).encode(),
        json.dumps([EXAMPLE_FLIGHT]).encode().replace(b'"year": 2013', b'"year": 1, "year": 2013'),
        json.dumps([EXAMPLE_FLIGHT]).encode().replace(b"1400", b"NaN"),
        json.dumps([EXAMPLE_FLIGHT]).encode().replace(b"1400", b"1e999"),
    ],
)
def test_batch_columns_leave_anything_unusual_to_pydantic(body: bytes) -> None:
    assert batch_columns(body) is None


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 3000),
    st.integers(2**62, 2**65),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["UA", "EWR", "N1", "ua", "UA\n", "", "ZZZZZZZ", "1400", "E:R"]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(RAW_COLUMNS), _values, st.booleans()),
        max_size=4,
    ),
    st.integers(1, 3),
)
def test_batch_columns_accept_only_what_pydantic_accepts_as_it_does(
    changes: list[tuple[str, Any, bool]], copies: int
) -> None:
    rows = [dict(EXAMPLE_FLIGHT) for _ in range(copies)]
    for name, value, drop in changes:
        if drop:
            rows[-1].pop(name, None)
        else:
            rows[-1][name] = value
    assert_same_as_pydantic(json.dumps(rows).encode())

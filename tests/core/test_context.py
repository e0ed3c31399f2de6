"""The context's window indexes: searches in a shared sort order, from each group's start and
through a table of every minute's position answer exactly as plain ``np.searchsorted`` does."""

from __future__ import annotations

import numpy as np
import pytest

from flightdelay.core import context
from flightdelay.core.context import KEY_SHIFT, _WindowIndex, search_order, sorted_search


@pytest.fixture(scope="module", params=["minute table", "binary search"])
def index(request: pytest.FixtureRequest) -> _WindowIndex:
    rng = np.random.default_rng(0)
    n = 5_000
    group = rng.integers(-1, 6, n)
    time = rng.integers(1_000, 50_000, n).astype(np.float64)
    time[::97] = np.nan
    values = np.column_stack([np.ones(n), rng.normal(size=n)])
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "binary search":
            patch.setattr(context, "_MINUTE_TABLE_MAX", 0)
        built = _WindowIndex.build(group, time, values)
    assert (built.minutes is not None) == (request.param == "minute table")
    return built


def plain_sums(index: _WindowIndex, group: np.ndarray, start: np.ndarray, end: np.ndarray):
    base = group.astype(np.int64) << KEY_SHIFT
    lo = np.searchsorted(index.keys, base | start.astype(np.int64), "left")
    hi = np.searchsorted(index.keys, base | end.astype(np.int64), "left")
    out = index.cum[hi] - index.cum[lo]
    out[group < 0] = np.nan
    return out


@pytest.mark.parametrize("rows", [1, 64, 65, 1_000])
def test_window_sums_in_search_order_equal_plain_searches(index: _WindowIndex, rows: int) -> None:
    rng = np.random.default_rng(rows)
    group = rng.integers(-1, 9, rows)  # unknown (-1) and groups without events (6..8)
    time = rng.integers(0, 60_000, rows).astype(np.float64)  # before, in and after the events
    order = search_order(group, time)
    windows = [(time - 120, time), (time - 7_200, time + 60), (time - 2**40, time + 2**33)]
    for start, end in windows:
        want = plain_sums(index, group, start, end)
        for got in (
            index.sums(group, start, end),
            index.sums(group, start, end, order),
            index.sums(group, start, end, np.arange(rows)[::-1]),  # any permutation: same answer
        ):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        index.sums(group, None, time, order), plain_sums(index, group, np.zeros(rows), time)
    )


def test_sorted_search_with_an_order_equals_searchsorted() -> None:
    rng = np.random.default_rng(1)
    keys = np.sort(rng.integers(0, 10**6, 10_000))
    queries = rng.integers(-10, 10**6 + 10, 500)
    for side in ("left", "right"):
        want = np.searchsorted(keys, queries, side=side)
        np.testing.assert_array_equal(sorted_search(keys, queries, side), want)
        order = np.argsort(queries)
        np.testing.assert_array_equal(sorted_search(keys, queries, side, order), want)


def test_window_index_of_no_events_sums_to_zero() -> None:
    empty = _WindowIndex.build(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 1)))
    got = empty.sums(np.array([0, -1]), None, np.array([10.0, 10.0]))
    np.testing.assert_array_equal(got, [[0.0], [np.nan]])

"""The context's window indexes: searches in a shared sort order, from each group's start and
through a search table (of every minute's position, or of coarser buckets searched within) answer
exactly as plain ``np.searchsorted`` does."""

from __future__ import annotations

import numpy as np
import pytest

from flightdelay.core import context
from flightdelay.core.context import (
    KEY_SHIFT,
    _SearchTable,
    _WindowIndex,
    search_order,
    sorted_search,
    table_search,
)

TABLES = ["minute table", "bucket table", "binary search"]


def limits(patch: pytest.MonkeyPatch, kind: str) -> None:
    """Table limits that give ``kind`` for the fixtures' few groups and ~50,000 minutes."""
    if kind != "minute table":
        patch.setattr(context, "_MINUTE_TABLE_MAX", 0)
    # buckets of ~500 minutes: tens of keys each, several rounds of the search within
    patch.setattr(context, "_BUCKET_TABLE_MAX", 600 if kind == "bucket table" else 0)


@pytest.fixture(scope="module", params=TABLES)
def index(request: pytest.FixtureRequest) -> _WindowIndex:
    rng = np.random.default_rng(0)
    n = 5_000
    group = rng.integers(-1, 6, n)
    time = rng.integers(1_000, 50_000, n).astype(np.float64)
    time[::97] = np.nan
    values = np.column_stack([np.ones(n), rng.normal(size=n)])
    with pytest.MonkeyPatch.context() as patch:
        limits(patch, request.param)
        built = _WindowIndex.build(group, time, values)
    kind = {None: "binary search", 1: "minute table"}
    assert kind.get(built.table and built.table.step, "bucket table") == request.param
    if request.param == "bucket table":
        assert built.table is not None
        assert built.table.rounds >= 4
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


@pytest.mark.parametrize("rows", [1, 65, 1_000])
def test_window_sums_of_several_windows_equal_each_window_alone(
    index: _WindowIndex, rows: int
) -> None:
    rng = np.random.default_rng(rows + 1)
    group = rng.integers(-1, 9, rows)
    time = rng.integers(0, 60_000, rows).astype(np.float64)
    windows = [(time - 120, time), (None, time), (time, time + 1_440), (time - 2**40, time)]
    together = index.window_sums(group, windows)
    for (start, end), got in zip(windows, together, strict=True):
        np.testing.assert_array_equal(got, index.sums(group, start, end))


@pytest.mark.parametrize("kind", TABLES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_table_search_equals_searchsorted(kind: str, side: str) -> None:
    rng = np.random.default_rng(2)
    keys = np.sort((rng.integers(0, 5, 20_000) << KEY_SHIFT) | rng.integers(10_000, 60_000, 20_000))
    keys[:50] = keys[0]  # many keys of one minute
    with pytest.MonkeyPatch.context() as patch:
        limits(patch, kind)
        table = _SearchTable.build(keys)
    rows = 1_000
    group = rng.integers(-1, 7, rows)  # unknown, and groups without keys
    time = rng.integers(0, 70_000, rows)  # before, among and after the keys
    time[:100] = keys[rng.integers(0, len(keys), 100)] & ((1 << KEY_SHIFT) - 1)  # on a key
    time[100:110] = [-5, 2**32 - 1, 2**32, 2**40, -(2**40), 0, 1, 59_999, 60_000, 9_999]
    for g, t in ((group, time), (group[:1], time[:1]), (group[:70], time[:70])):
        want = np.searchsorted(keys, (g.astype(np.int64) << KEY_SHIFT) | t, side)
        np.testing.assert_array_equal(table_search(keys, table, g, t, side), want)
        stacked = np.stack([t, t + 7])
        want = np.searchsorted(keys, (g.astype(np.int64) << KEY_SHIFT) | stacked, side)
        np.testing.assert_array_equal(table_search(keys, table, g, stacked, side), want)


def test_search_table_of_no_keys_or_times_before_1970_is_none() -> None:
    assert _SearchTable.build(np.zeros(0, np.int64)) is None
    assert _SearchTable.build(np.array([-5, 3], np.int64)) is None

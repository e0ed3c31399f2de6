"""The one definition of a valid flight row, and the service's request schema derived from it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from flightdelay.core.context import Context, FeatureError, build_context
from flightdelay.core.params import FeaturizeParams
from flightdelay.core.schemas import (
    EXAMPLE_FLIGHT,
    FLIGHT_BOUNDS,
    FLIGHT_PATTERNS,
    Flight,
    all_match,
    check_flight_rows,
    impossible_dates,
    shorten,
)
from flightdelay.pipeline.featurize import featurize
from synthetic import raw_tables


def _broken(rows: dict[str, Any]) -> dict[tuple[str, str], list[int]]:
    return {(r.column, r.kind): r.positions.tolist() for r in check_flight_rows(rows) if not r.ok}


def _rows(**changes: list[Any]) -> dict[str, list[Any]]:
    n = len(next(iter(changes.values())))
    return {k: changes.get(k, [v] * n) for k, v in EXAMPLE_FLIGHT.items()}


def test_check_flight_rows_passes_the_example_flight() -> None:
    assert _broken(_rows(day=[2])) == {}


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({"month": [2, 2, 2], "day": [28, 29, 31]}, {("day", "invalid_date"): [1, 2]}),
        ({"sched_dep_time": [1275, 1259]}, {("sched_dep_time", "invalid_hhmm"): [0]}),
        ({"sched_arr_time": [2400, 0]}, {("sched_arr_time", "out_of_range"): [0]}),
        (
            {"distance": [5, np.nan]},
            {("distance", "out_of_range"): [0], ("distance", "missing"): [1]},
        ),
        ({"flight": [1.5, 2]}, {("flight", "out_of_range"): [0]}),
        ({"year": [True, 2013]}, {("year", "not_a_number"): [0]}),
        ({"tailnum": [None, "N1234567"]}, {("tailnum", "invalid_pattern"): [1]}),
    ],
)
def test_check_flight_rows_finds_each_broken_rule(
    changes: dict[str, list[Any]], broken: dict[tuple[str, str], list[int]]
) -> None:
    assert _broken(_rows(**changes)) == broken


def test_check_flight_rows_messages_name_the_value() -> None:
    rows = _rows(month=[2], day=[31], sched_dep_time=[1275])
    rules = {(r.column, r.kind): r for r in check_flight_rows(rows)}
    assert rules["day", "invalid_date"].message(0) == "2013-02 has no day 31"
    assert rules["sched_dep_time", "invalid_hhmm"].summary() == (
        "column 'sched_dep_time': 1 row(s) not an HHMM clock time, "
        "e.g. 1275 is not an HHMM time: minutes must be 00..59"
    )


def test_check_flight_rows_same_answer_for_a_frame_and_for_lists() -> None:
    rows = _rows(month=[2, 4, 4], day=[30, 30, 31], tailnum=["x" * 99, None, "N1"])
    assert _broken(rows) == _broken(pd.DataFrame(rows)) != {}


def _answers(rows: Any) -> list[tuple[str, str, list[int], list[str]]]:
    return [
        (r.column, r.kind, r.positions.tolist(), [r.message(int(i)) for i in r.positions])
        for r in check_flight_rows(rows)
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"day": [2, 3]},
        {"distance": [5, np.nan, float("inf"), 719.5, 10**30]},
        {"flight": [1.5, 2, True, "3", None]},
        {"carrier": ["UA", "ua", None, "U\n", "UA\n"], "tailnum": [None, "N1", "n1", 5, "N" * 99]},
        {
            "origin": ["EWR", "EW\nR", "E", "JFK\n", "LGA"],
            "tailnum": [None, None, "N1", "N2", "N3"],
        },
    ],
)
def test_check_flight_rows_plain_lists_answer_as_object_arrays(changes: dict[str, Any]) -> None:
    """The service's lists of ints, floats and strings take a faster path: same rules, rows and
    messages as the same values in object arrays."""
    rows = _rows(**changes)
    as_objects = {k: np.asarray(v, dtype=object) for k, v in rows.items()}
    assert _answers(rows) == _answers(as_objects)
    assert _answers(rows) == _answers(pd.DataFrame(as_objects))


def test_all_match_is_every_value_matching_the_pattern() -> None:
    pattern = FLIGHT_PATTERNS["tailnum"]
    assert all_match(pattern, ["N1", "N57857", "12"])
    assert all_match(pattern, [])
    assert not all_match(pattern, ["N1", "n1"])
    assert not all_match(pattern, ["N1", "N1234567"])
    assert not all_match(pattern, ["N1\nN2"])  # one value holding a newline is not two
    assert not all_match(pattern, ["N1\n"])
    assert not all_match(pattern, ["N1", 12])
    assert not all_match(r"^N.*$", ["N1"])  # not a character class: left to the caller


@pytest.mark.parametrize(
    ("year", "month", "day", "impossible"),
    [(2013, 2, 29, True), (2012, 2, 29, False), (2000, 2, 29, False), (1900, 2, 29, True),
     (2013, 4, 31, True), (2013, 12, 31, False), (2013, 13, 1, True), (2013, 1, 0, True)],
)  # fmt: skip
def test_impossible_dates_follows_the_gregorian_calendar(
    year: int, month: int, day: int, impossible: bool
) -> None:
    assert impossible_dates(np.array([year]), np.array([month]), np.array([day]))[0] == impossible


def test_shorten_cuts_a_long_value_and_states_its_length() -> None:
    assert shorten("N" * 50_000_000) == "N" * 40 + "... (50,000,000 characters)"
    assert shorten("N57857") == "N57857"
    assert shorten(1275) == 1275


# ---------------------------------------------------------------- the service's schema


def test_flight_schema_bounds_are_the_definitions() -> None:
    schema = TypeAdapter(Flight).json_schema()["properties"]
    for column, (low, high) in FLIGHT_BOUNDS.items():
        assert (schema[column]["minimum"], schema[column]["maximum"]) == (low, high), column
    for column, pattern in FLIGHT_PATTERNS.items():
        field = schema[column]
        patterns = {f.get("pattern") for f in field.get("anyOf", [field])} - {None}
        assert patterns == {pattern}, column


def test_flight_schema_refuses_2400_which_training_data_never_has() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 2359"):
        TypeAdapter(Flight).validate_python(EXAMPLE_FLIGHT | {"sched_dep_time": 2400})


# ---------------------------------------------------------------- featurize


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, Context]:
    tables = raw_tables()
    flights = tables["flights"]
    return flights, build_context(flights, tables["weather"], tables["planes"], tables["airports"])


def test_featurize_refuses_31_february_with_a_message_not_a_traceback(synthetic) -> None:
    flights, context = synthetic
    bad = flights.head(3).copy()
    bad.loc[bad.index[1], ["month", "day"]] = [2, 31]
    params = FeaturizeParams(
        target_delay_minutes=30, cancelled="late", lead_minutes=60, window_hours=2
    )
    with pytest.raises(FeatureError, match=r"'day': 1 row\(s\) not a real calendar date, e\.g\. "):
        featurize(bad, context, params)

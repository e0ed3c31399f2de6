"""ModelService's row rules and warnings: on rows the request schema accepted, the same answers
as the one definition of a valid flight row (check_flight_rows) and the per-row warning rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from flightdelay.core.features import aircraft_warning
from flightdelay.core.flights import RAW_COLUMNS, days_from_civil
from flightdelay.core.model_io import load_model_bundle
from flightdelay.core.schemas import EXAMPLE_FLIGHT, Flight, check_flight_rows
from flightdelay.serving.model_service import ModelService, RowError, to_columns
from serving_bundle import build_model_dir


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> ModelService:
    model_dir = build_model_dir(tmp_path_factory.mktemp("model-service"), repo_root)
    return ModelService(load_model_bundle(model_dir))


def reference_errors(service: ModelService, columns: dict[str, list[Any]]) -> list[RowError]:
    """Every rule of check_flight_rows, then a known origin, row by row."""
    errors = [
        RowError((int(i), rule.column), rule.message(int(i)), rule.kind)
        for rule in check_flight_rows(columns)
        for i in rule.positions
    ]
    known = ", ".join(sorted(service.origins))
    errors += [
        RowError(
            (i, "origin"),
            f"{o!r} is not an origin the model was trained on ({known})",
            "unknown_origin",
        )
        for i, o in enumerate(columns["origin"])
        if o not in service.origins
    ]
    return sorted(errors, key=lambda e: e.loc)


def reference_warnings(service: ModelService, columns: dict[str, list[Any]]) -> list[list[str]]:
    """The warning rules, one row at a time."""
    first, last = (str(np.datetime64(d, "D")) for d in (service.first_day, service.last_day))
    out = []
    for row in zip(*(columns[c] for c in RAW_COLUMNS), strict=True):
        flight = dict(zip(RAW_COLUMNS, row, strict=True))
        found = []
        if flight["carrier"] not in service.carriers:
            found.append(
                f"carrier {flight['carrier']!r} was not seen in training: treated as missing"
            )
        if flight["dest"] not in service.dests:
            found.append(f"dest {flight['dest']!r} was not seen in training: treated as missing")
        if flight["tailnum"] is None or flight["tailnum"] not in service.tailnums:
            found.append(aircraft_warning(flight["tailnum"]))
        day = int(days_from_civil(*(np.array([flight[c]]) for c in ("year", "month", "day")))[0])
        if not service.first_day <= day <= service.last_day:
            found.append(
                f"date {np.datetime64(day, 'D')} is outside the schedule in the model's context "
                f"({first}..{last}): weather, congestion and recent-delay features are unavailable"
            )
        out.append(found)
    return out


def _flights(service: ModelService) -> st.SearchStrategy[dict[str, Any]]:
    """Rows the request schema accepts: real and impossible dates, HHMM and other clock
    numbers, known and unknown codes, dates inside and outside the model's schedule."""
    return st.fixed_dictionaries(
        {
            "year": st.sampled_from([1970, 2012, 2013, 2014, 2100]),
            "month": st.integers(1, 12),
            "day": st.integers(1, 31),
            "sched_dep_time": st.integers(0, 2359),
            "sched_arr_time": st.integers(0, 2359),
            "carrier": st.sampled_from([*sorted(service.carriers)[:3], "ZZ"]),
            "flight": st.integers(1, 9999),
            "tailnum": st.sampled_from([*sorted(service.tailnums)[:3], "N0", None]),
            "origin": st.sampled_from([*sorted(service.origins), "ATL"]),
            "dest": st.sampled_from([*sorted(service.dests)[:3], "QQQ"]),
            "distance": st.floats(10, 5000),
        }
    )


def test_model_service_check_equals_check_flight_rows_on_schema_valid_rows(
    service: ModelService,
) -> None:
    flights = TypeAdapter(list[Flight])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(_flights(service), min_size=1, max_size=6))
    def check(rows: list[dict[str, Any]]) -> None:
        columns = to_columns(flights.validate_python(rows))
        assert service.check(columns) == reference_errors(service, columns)

    check()


def test_model_service_warnings_follow_the_per_row_rules(service: ModelService) -> None:
    @settings(max_examples=200, deadline=None)
    @given(st.lists(_flights(service), min_size=1, max_size=6))
    def check(rows: list[dict[str, Any]]) -> None:
        columns = to_columns(rows)
        if service.check(columns):  # warnings are made for rows that passed the check
            return
        assert service.warnings(columns) == reference_warnings(service, columns)

    check()


def test_model_service_check_names_each_broken_rule_in_row_order(service: ModelService) -> None:
    rows = [
        EXAMPLE_FLIGHT,
        EXAMPLE_FLIGHT | {"month": 2, "day": 30, "origin": "ATL"},
        EXAMPLE_FLIGHT | {"sched_dep_time": 1575, "sched_arr_time": 99},
    ]
    errors = service.check(to_columns(rows))
    assert [(e.loc, e.type) for e in errors] == [
        ((1, "day"), "invalid_date"),
        ((1, "origin"), "unknown_origin"),
        ((2, "sched_arr_time"), "invalid_hhmm"),
        ((2, "sched_dep_time"), "invalid_hhmm"),
    ]
    assert errors[0].msg == "2013-02 has no day 30"

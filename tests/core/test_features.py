from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.context import Context, FeatureError, build_context, departures_log
from flightdelay.core.features import (
    FEATURE_COLUMNS,
    aircraft_warning,
    build_features,
    feature_arrays,
    target,
)
from flightdelay.core.flights import (
    OUTCOME_COLUMNS,
    RAW_COLUMNS,
    actual_departure,
    days_to_nearest_holiday,
)
from flightdelay.core.params import FeaturizeParams
from synthetic import raw_tables

PARAMS = FeaturizeParams(target_delay_minutes=30, cancelled="late", lead_minutes=60, window_hours=2)


def flight(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "year": 2013,
        "month": 3,
        "day": 5,
        "dep_time": np.nan,
        "sched_dep_time": 1200,
        "dep_delay": np.nan,
        "arr_time": np.nan,
        "sched_arr_time": 1430,
        "arr_delay": np.nan,
        "carrier": "UA",
        "flight": 1,
        "tailnum": "N1",
        "origin": "EWR",
        "dest": "ORD",
        "air_time": np.nan,
        "distance": 719,
    }
    return row | overrides


def context_of(flights: list[dict[str, object]], weather: pd.DataFrame | None = None) -> Context:
    tables = raw_tables(months=(3,), per_day=1)
    return build_context(
        pd.DataFrame(flights),
        tables["weather"] if weather is None else weather,
        tables["planes"],
        tables["airports"],
    )


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, Context]:
    tables = raw_tables()
    context = build_context(
        tables["flights"], tables["weather"], tables["planes"], tables["airports"]
    )
    return tables["flights"], context


# ---------------------------------------------------------------- contract


def test_build_features_returns_declared_columns_and_dtypes(synthetic) -> None:
    flights, context = synthetic
    features = build_features(flights, context, PARAMS)
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert features.index.equals(flights.index)
    assert (features.dtypes[4:] == np.float64).all()
    assert all(str(features[c].dtype) == "str" for c in FEATURE_COLUMNS[:4])


def test_build_features_one_row_equals_the_same_row_in_a_batch(synthetic) -> None:
    flights, context = synthetic
    batch = build_features(flights, context, PARAMS)  # > 64 rows: searches in sorted order
    for i in (0, 7, 100, len(flights) - 1):
        one = build_features(flights.iloc[[i]], context, PARAMS)
        pd.testing.assert_frame_equal(one, batch.iloc[[i]])


def test_feature_arrays_are_the_columns_of_build_features(synthetic) -> None:
    flights, context = synthetic
    frame = build_features(flights, context, PARAMS)
    arrays = feature_arrays(flights, context, PARAMS)
    assert list(arrays) == list(FEATURE_COLUMNS)
    for name in FEATURE_COLUMNS[4:]:
        assert arrays[name].dtype == np.float64
        np.testing.assert_array_equal(arrays[name], frame[name].to_numpy())
    for name in FEATURE_COLUMNS[:4]:
        text = [v if isinstance(v, str) else None for v in arrays[name]]
        assert text == [v if isinstance(v, str) else None for v in frame[name]]


def test_feature_arrays_checked_skips_the_row_checks_only(synthetic) -> None:
    flights, context = synthetic
    bad = flights.head(3).assign(sched_dep_time=1275)  # 12:75
    with pytest.raises(FeatureError, match="sched_dep_time"):
        feature_arrays(bad, context, PARAMS)
    assert len(feature_arrays(bad, context, PARAMS, checked=True)["distance"]) == 3


def test_build_features_lookup_paths_for_small_and_large_batches_agree(
    synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightdelay.core import context as context_module

    flights, context = synthetic
    dict_and_sorted = build_features(flights, context, PARAMS)
    monkeypatch.setattr(context_module, "_SMALL_BATCH", 0)  # pandas Index look-ups
    monkeypatch.setattr(context_module, "_SORTED_SEARCH_MIN", 10**9)  # searches in query order
    pd.testing.assert_frame_equal(build_features(flights, context, PARAMS), dict_and_sorted)


def test_feature_arrays_of_the_raw_columns_equal_those_of_the_frame(synthetic) -> None:
    flights, context = synthetic
    rows = odd_rows(flights)
    columns = {c: rows[c].to_numpy() for c in RAW_COLUMNS}
    from_frame = feature_arrays(rows, context, PARAMS)
    from_columns = feature_arrays(columns, context, PARAMS)
    for name in FEATURE_COLUMNS:
        np.testing.assert_array_equal(from_columns[name], from_frame[name])
    with pytest.raises(FeatureError, match="sched_dep_time"):
        feature_arrays(columns | {"sched_dep_time": np.full(len(rows), 1275)}, context, PARAMS)


def odd_rows(flights: pd.DataFrame, n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Random rows of ``flights`` with unknown airports, carriers and tails, null tails and
    midnight clock times mixed in."""
    rng = np.random.default_rng(seed)
    rows = flights.iloc[rng.choice(len(flights), n, replace=False)].reset_index(drop=True)
    rows["tailnum"] = rows["tailnum"].astype(object)
    rows.loc[::7, "origin"] = "QQQ"
    rows.loc[::5, "dest"] = "XXX"
    rows.loc[::6, "tailnum"] = None
    rows.loc[::8, "tailnum"] = "N0NE"
    rows.loc[::9, "carrier"] = "ZZ"
    rows.loc[::13, "sched_dep_time"] = 2359
    rows.loc[::17, "sched_dep_time"] = 0
    return rows


def test_feature_arrays_of_a_small_frame_read_at_once_equal_column_by_column(
    synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightdelay.core import features as features_module

    flights, context = synthetic
    rows = odd_rows(flights)
    rows["distance"] = rows["distance"].astype(np.int64)  # read as float64 either way
    typed = rows.head(5).astype({"origin": "category", "carrier": "string"})  # column by column
    frames = [rows.iloc[:1], rows.iloc[5:8], rows.iloc[20:84], rows.iloc[::-3].head(9), typed]
    once = [feature_arrays(frame, context, PARAMS) for frame in frames]
    monkeypatch.setattr(features_module, "_SMALL_FRAME", 0)
    for frame, got in zip(frames, once, strict=True):
        want = feature_arrays(frame, context, PARAMS)
        for name in FEATURE_COLUMNS:
            np.testing.assert_array_equal(got[name], want[name])
            assert got[name].dtype == want[name].dtype


@pytest.mark.parametrize("kind", ["minute table", "bucket table", "binary search"])
def test_build_features_search_tables_and_plain_searches_agree(
    synthetic, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from flightdelay.core import context as context_module

    flights, context = synthetic
    rows = odd_rows(flights)
    want = build_features(rows, context, PARAMS)
    if kind != "minute table":
        monkeypatch.setattr(context_module, "_MINUTE_TABLE_MAX", 0)
    monkeypatch.setattr(context_module, "_BUCKET_TABLE_MAX", 400 if kind == "bucket table" else 0)
    fresh = Context.from_tables(context.tables())
    pd.testing.assert_frame_equal(build_features(rows, fresh, PARAMS), want)
    # a small batch (plain searches, whatever the tables) equals its rows in the large one
    for start in range(0, 40, 7):
        part = rows.iloc[start : start + 1 + start % 5]
        pd.testing.assert_frame_equal(build_features(part, fresh, PARAMS), want.loc[part.index])


def test_carrier_origin_look_up_equals_that_of_the_joined_text(synthetic) -> None:
    _, context = synthetic
    tables = context.tables()
    departures = tables["departures"].copy()
    departures.loc[:2, "carrier"] = ["A|B", "A", "A|B|C"]  # names with "|" in them
    departures.loc[:2, "origin"] = ["EWR", "B|EWR", "JFK"]
    odd = Context.from_tables(tables | {"departures": departures})
    # "A|B|EWR" spelt two ways, "A|B|C|JFK" three ways (one origin no airport), and misses
    carriers = np.array(["A|B", "A", "A|B|C", "A|B", "A", "A", "A|B", "UA", "ZZ", "A|B|C"], object)
    origins = np.array(
        ["EWR", "B|EWR", "JFK", "C|JFK", "B|C|JFK", "EWR", "JFK", "QQQ", "EWR", "C|JFK"], object
    )
    look = odd.lookups
    got = look.carrier_origin_codes(carriers, look.airport(origins))
    from flightdelay.core.context import codes

    want = codes(odd.vocab["carrier_origin"], carriers + "|" + origins)
    np.testing.assert_array_equal(got, want)
    assert want[0] == want[1] >= 0
    assert want[2] == want[3] == want[4] >= 0
    assert (want[5:] == -1).all()


def test_build_features_text_columns_of_any_dtype_give_the_same_features(synthetic) -> None:
    flights, context = synthetic
    typed = flights.astype({"origin": "category", "carrier": "string", "dest": object})
    pd.testing.assert_frame_equal(
        build_features(typed, context, PARAMS), build_features(flights, context, PARAMS)
    )


def test_build_features_never_reads_outcome_columns(synthetic) -> None:
    flights, context = synthetic
    scrambled = flights.copy()
    for column in OUTCOME_COLUMNS:
        scrambled[column] = 9999
    pd.testing.assert_frame_equal(
        build_features(flights, context, PARAMS), build_features(scrambled, context, PARAMS)
    )
    only_raw = flights.loc[:, list(RAW_COLUMNS)]
    pd.testing.assert_frame_equal(
        build_features(flights, context, PARAMS), build_features(only_raw, context, PARAMS)
    )


def test_build_features_missing_column_names_it(synthetic) -> None:
    flights, context = synthetic
    with pytest.raises(FeatureError, match=r"lack column\(s\) \['tailnum'\]"):
        build_features(flights.drop(columns="tailnum"), context, PARAMS)


def test_build_features_impossible_value_names_column_and_value(synthetic) -> None:
    flights, context = synthetic
    bad = flights.head(3).copy()
    bad.loc[bad.index[1], "sched_dep_time"] = 2517
    with pytest.raises(FeatureError, match=r"'sched_dep_time': 1 row\(s\) .* e\.g\. 2517"):
        build_features(bad, context, PARAMS)


def test_build_features_clock_time_with_minutes_over_59_is_refused(synthetic) -> None:
    flights, context = synthetic
    bad = flights.head(2).assign(sched_dep_time=[1275, 900])
    with pytest.raises(FeatureError, match=r"'sched_dep_time': 1 row\(s\) not an HHMM clock time"):
        build_features(bad, context, PARAMS)


def test_build_features_unknown_airport_and_aircraft_give_missing_not_error(synthetic) -> None:
    flights, context = synthetic
    row = flights.head(1).assign(origin="XXX", dest="YYY", tailnum="N0NE", carrier="ZZ")
    features = build_features(row, context, PARAMS).iloc[0]
    assert features["origin"] == "XXX"
    assert np.isnan(features["temp"])
    assert np.isnan(features["plane_seats"])
    assert np.isnan(features["origin_recent_departures"])
    assert np.isnan(features["dest_lat"])


def test_context_from_tables_missing_table_or_column_is_named(synthetic) -> None:
    _, context = synthetic
    tables = context.tables()
    with pytest.raises(FeatureError, match="context table 'planes' is missing"):
        Context.from_tables({k: v for k, v in tables.items() if k != "planes"})
    tables["weather"] = tables["weather"].drop(columns="precip")
    with pytest.raises(FeatureError, match=r"'weather' lacks column\(s\) \['precip'\]"):
        Context.from_tables(tables)


# ---------------------------------------------------------------- time and leakage


def test_actual_departure_after_midnight_is_next_day() -> None:
    frame = pd.DataFrame(
        [
            flight(sched_dep_time=2350, dep_time=20, dep_delay=30.0),
            flight(sched_dep_time=600, dep_time=555, dep_delay=-5.0),
        ]
    )
    sched_day = (pd.Timestamp("2013-03-05") - pd.Timestamp(0)).days * 1440
    assert actual_departure(frame).tolist() == [sched_day + 1440 + 20, sched_day + 355]


def test_origin_recent_departures_count_only_before_prediction_time() -> None:
    # Prediction time of the 12:00 flight is 11:00: a departure at 10:59 counts, 11:01 does not.
    other = [
        flight(flight=2, tailnum="N2", sched_dep_time=1040, dep_time=1059, dep_delay=19.0),
        flight(flight=3, tailnum="N3", sched_dep_time=1050, dep_time=1101, dep_delay=11.0),
    ]
    query = pd.DataFrame([flight()])
    features = build_features(query, context_of([*other, flight()]), PARAMS).iloc[0]
    assert features["origin_recent_departures"] == 1
    assert features["origin_recent_mean_delay"] == 19
    assert features["origin_recent_late_share"] == 1.0


def test_origin_waiting_counts_flights_scheduled_before_prediction_time_not_yet_gone() -> None:
    # At 11:00, flight 2 (sched 10:30, left 11:30) and cancelled flight 3 (sched 10:00) wait.
    others = [
        flight(flight=2, tailnum="N2", sched_dep_time=1030, dep_time=1130, dep_delay=60.0),
        flight(flight=3, tailnum="N3", sched_dep_time=1000),
        flight(flight=4, tailnum="N4", sched_dep_time=1010, dep_time=1015, dep_delay=5.0),
        flight(flight=5, tailnum="N5", sched_dep_time=700),
    ]  # cancelled > 2 h before
    features = build_features(
        pd.DataFrame([flight()]), context_of([*others, flight()]), PARAMS
    ).iloc[0]
    assert features["origin_waiting"] == 2
    assert features["origin_waiting_mean_minutes"] == (30 + 60) / 2


def test_tail_previous_delay_is_known_only_if_it_departed_before_prediction_time() -> None:
    early = flight(flight=9, sched_dep_time=800, dep_time=845, dep_delay=45.0)
    late = flight(flight=9, sched_dep_time=1030, dep_time=1115, dep_delay=45.0)
    known = build_features(pd.DataFrame([flight()]), context_of([early, flight()]), PARAMS)
    assert known.iloc[0]["tail_prev_dep_delay"] == 45
    assert known.iloc[0]["tail_prev_gap_minutes"] == 240
    assert known.iloc[0]["tail_prev_waiting_minutes"] == 0
    pending = build_features(pd.DataFrame([flight()]), context_of([late, flight()]), PARAMS)
    assert np.isnan(pending.iloc[0]["tail_prev_dep_delay"])  # left 11:15, after 11:00
    assert pending.iloc[0]["tail_prev_waiting_minutes"] == 30  # waiting since 10:30


def test_tail_legs_of_the_day_and_schedule_slack_come_from_the_schedule() -> None:
    # N1 flew 06:00 (1,000 miles) and 08:00 (500 miles, 45 min late) before its 12:00 flight;
    # yesterday's 23:00 leg is not today's.
    legs = [
        flight(flight=7, day=4, sched_dep_time=2300, dep_time=2300, dep_delay=0.0),
        flight(flight=8, sched_dep_time=600, dep_time=600, dep_delay=0.0, distance=1000),
        flight(flight=9, sched_dep_time=800, dep_time=845, dep_delay=45.0, distance=500),
    ]
    features = build_features(pd.DataFrame([flight()]), context_of([*legs, flight()]), PARAMS)
    row = features.iloc[0]
    assert row["tail_leg_of_day"] == 2
    assert row["tail_prev_distance"] == 500
    slack = 240 - 2 * (500 / 7.5 + 30)
    assert row["tail_prev_slack_minutes"] == pytest.approx(slack)
    assert row["tail_prev_expected_late_minutes"] == pytest.approx(45 - slack)


def test_longer_lead_time_sees_fewer_departures(synthetic) -> None:
    flights, context = synthetic
    near = build_features(flights, context, PARAMS)
    far = build_features(flights, context, PARAMS.model_copy(update={"lead_minutes": 180}))
    assert far["tail_prev_dep_delay"].notna().sum() < near["tail_prev_dep_delay"].notna().sum()


# ---------------------------------------------------------------- weather, calendar, schedule


def test_weather_is_the_origin_observation_at_the_scheduled_hour() -> None:
    tables = raw_tables(months=(3,), per_day=1)
    weather = tables["weather"]
    at_noon = (weather["origin"] == "EWR") & (weather["day"] == 5) & (weather["hour"] == 12)
    weather.loc[at_noon, "precip"] = 0.77
    features = build_features(
        pd.DataFrame([flight(sched_dep_time=1259)]), context_of([flight()], weather), PARAMS
    )
    assert features.iloc[0]["precip"] == 0.77


def test_weather_at_prediction_time_is_the_last_observation_known_then() -> None:
    tables = raw_tables(months=(3,), per_day=1)
    weather = tables["weather"]
    at = (weather["origin"] == "EWR") & (weather["day"] == 5)
    weather.loc[at & (weather["hour"] == 11), "precip"] = 0.5  # 11:00, before 11:59
    weather.loc[at & (weather["hour"] == 12), "precip"] = 0.77  # the scheduled hour, after it
    row, context = pd.DataFrame([flight(sched_dep_time=1259)]), context_of([flight()], weather)
    honest = PARAMS.model_copy(update={"weather_at": "prediction_time"})
    assert build_features(row, context, honest).iloc[0]["precip"] == 0.5
    assert build_features(row, context, PARAMS).iloc[0]["precip"] == 0.77


def test_aircraft_warning_says_the_aircraft_is_unknown_and_names_the_tail() -> None:
    assert aircraft_warning(None).startswith("tailnum is null: aircraft unknown, scored without")
    assert aircraft_warning("N1X").startswith(
        "tailnum 'N1X' is not in the model's context: aircraft unknown"
    )


def test_weather_older_than_three_hours_is_missing() -> None:
    tables = raw_tables(months=(3,), per_day=1)
    weather = tables["weather"]
    gap = (weather["day"] == 5) & weather["hour"].between(8, 12)
    features = build_features(
        pd.DataFrame([flight()]), context_of([flight()], weather[~gap]), PARAMS
    )
    assert np.isnan(features.iloc[0]["temp"])


def test_days_to_nearest_holiday_is_zero_on_july_fourth() -> None:
    days = np.array(
        [np.datetime64(d, "D").astype(np.int64) for d in ("2013-07-04", "2013-07-06", "2013-12-31")]
    )
    assert days_to_nearest_holiday(days).tolist() == [0, 2, 1]


def test_origin_sched_hour_counts_the_published_schedule() -> None:
    schedule = [flight(flight=i, tailnum=f"N{i}", sched_dep_time=1200 + i) for i in range(5)]
    schedule.append(flight(flight=9, tailnum="N9", sched_dep_time=1300))
    features = build_features(pd.DataFrame([flight()]), context_of(schedule), PARAMS).iloc[0]
    assert features["origin_sched_hour"] == 5
    assert features["origin_sched_day"] == 6


def test_departures_log_needs_outcome_columns() -> None:
    with pytest.raises(FeatureError, match=r"lack column\(s\) \['dep_time', 'dep_delay'\]"):
        departures_log(pd.DataFrame([flight()]).drop(columns=["dep_time", "dep_delay"]))


# ---------------------------------------------------------------- target


def test_target_cancelled_flights_are_late_or_dropped_as_configured() -> None:
    frame = pd.DataFrame({"arr_delay": [45.0, 29.0, 30.0, np.nan]})
    assert target(frame, PARAMS).tolist() == [1, 0, 1, 1]
    dropped = target(frame, PARAMS.model_copy(update={"cancelled": "drop"}))
    assert dropped.iloc[:3].tolist() == [1, 0, 1]
    assert dropped.isna().tolist() == [False, False, False, True]


def test_target_without_arrival_delay_column_says_so() -> None:
    with pytest.raises(FeatureError, match="lack column 'arr_delay'"):
        target(pd.DataFrame({"x": [1]}), PARAMS)

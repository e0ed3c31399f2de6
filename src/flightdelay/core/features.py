"""The feature definitions: raw scheduled flight rows + a :class:`Context` -> model input frame.

This module is the contract shared by training, drift and serving: :func:`build_features` is the
only way a model input row is made, for one flight (serving) or for a year of flights (training).
It is pure (no files, no network) and vectorised (joins by ``searchsorted``; no per-row Python).
The flight rows' time arithmetic is :mod:`flightdelay.core.flights`, the lookup tables and their
indexes :mod:`flightdelay.core.context`.

A prediction is made at *prediction time* = scheduled departure - ``lead_minutes``. Features built
from other flights (the ``departures`` log) use only events that had happened before that instant:
a departure counts once its actual departure instant is before the prediction time, and a flight
that was scheduled before the prediction time but had not departed by then is counted as
"waiting" (which is itself an observable fact at that instant). The flight's own actual departure,
arrival, delays and air time are never read.

Weather is the origin's latest observation at or before the prediction time
(``weather_at: prediction_time``; ``scheduled_hour``, the observation at the scheduled hour, an
hour or more later, is kept only so that older models can be rebuilt). Congestion counts come from
the published schedule (the departures log's scheduled instants), known in advance.

The aircraft (``tailnum``) may be unknown at prediction time: a null or unlisted tail number gives
missing aircraft and previous-leg features, the way ``featurize`` presents a share of training
flights (``unknown_aircraft_share``); :func:`aircraft_warning` is what serving tells the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.context import (
    KEY_SHIFT,
    WEATHER_FEATURES,
    Context,
    FeatureError,
    codes,
    search_order,
    sorted_search,
)
from flightdelay.core.flights import (
    MINUTES_PER_DAY,
    RAW_COLUMNS,
    days_to_nearest_holiday,
    hhmm_to_minutes,
    scheduled_departure,
)
from flightdelay.core.params import FeaturizeParams
from flightdelay.core.schemas import check_flight_rows

CATEGORICAL_FEATURES: tuple[str, ...] = ("carrier", "origin", "dest", "plane_type")
NUMERIC_FEATURES: tuple[str, ...] = (
    # calendar and schedule
    "day_of_week",
    "sched_dep_minute",
    "sched_arr_minute",
    "days_to_holiday",
    "distance",
    # weather at the origin at the scheduled hour
    *WEATHER_FEATURES,
    # congestion in the published schedule
    "origin_sched_hour",
    "origin_sched_day",
    # aircraft
    "plane_year",
    "plane_seats",
    "plane_engines",
    # destination airport
    "dest_lat",
    "dest_lon",
    "dest_alt",
    # operational state at prediction time
    "origin_recent_departures",
    "origin_recent_mean_delay",
    "origin_recent_late_share",
    "origin_waiting",
    "origin_waiting_mean_minutes",
    "dest_recent_departures",
    "dest_recent_mean_delay",
    "carrier_origin_recent_mean_delay",
    "tail_prev_gap_minutes",
    "tail_prev_dep_delay",
    "tail_prev_waiting_minutes",
    "tail_prev_distance",
    "tail_prev_slack_minutes",
    "tail_prev_expected_late_minutes",
    "tail_leg_of_day",
)
FEATURE_COLUMNS: tuple[str, ...] = (*CATEGORICAL_FEATURES, *NUMERIC_FEATURES)

WEATHER_MAX_AGE_HOURS = 3  # an observation older than this at the scheduled hour counts as missing
TAIL_PREV_MAX_GAP_MINUTES = 24 * 60  # "the same aircraft's previous flight" means within a day
# A nominal round trip of the previous leg: out and back at 450 mph plus 30 minutes of taxi and
# turnaround per leg. Slack = scheduled gap minus that: how much delay the schedule can absorb.
NOMINAL_MILES_PER_MINUTE = 7.5
NOMINAL_GROUND_MINUTES = 30


def check_raw(flights: pd.DataFrame) -> None:
    """Refuse rows that are not valid flights (:func:`flightdelay.core.schemas.check_flight_rows`,
    the definition validate and the service use), naming the column and an example."""
    missing = [c for c in RAW_COLUMNS if c not in flights.columns]
    if missing:
        raise FeatureError(f"flight rows lack column(s) {missing}")
    if broken := next((rule for rule in check_flight_rows(flights) if not rule.ok), None):
        raise FeatureError(broken.summary())


def build_features(
    flights: pd.DataFrame, context: Context, params: FeaturizeParams
) -> pd.DataFrame:
    """The model input frame (columns FEATURE_COLUMNS, index of ``flights``) for raw flight rows."""
    return features_frame(feature_arrays(flights, context, params), flights.index)


def features_frame(arrays: Mapping[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """The model input frame of :func:`feature_arrays`' columns (text columns as ``str``)."""
    n = len(index)
    categorical = pd.DataFrame(
        {name: pd.array(arrays[name], dtype="str") for name in CATEGORICAL_FEATURES},
        index=index,
    )
    numeric = pd.DataFrame(
        np.column_stack([arrays[name] for name in NUMERIC_FEATURES]).reshape(n, -1),
        columns=list(NUMERIC_FEATURES),
        index=index,
    )
    return pd.concat([categorical, numeric], axis=1)


def feature_arrays(
    flights: pd.DataFrame, context: Context, params: FeaturizeParams, *, checked: bool = False
) -> dict[str, np.ndarray]:
    """:func:`build_features` as one array per FEATURE_COLUMNS name, without the frame: text
    columns as object arrays (str; None or NaN when missing), the others float64. ``checked=True``
    skips :func:`check_raw` for rows the caller has just checked with the same rules (the
    service: :func:`flightdelay.core.schemas.check_flight_rows` on the request's columns)."""
    if not checked:
        check_raw(flights)
    n = len(flights)
    lead, window = params.lead_minutes, params.window_hours * 60
    vocab = context.vocab
    sched = scheduled_departure(flights)
    pred = sched - lead
    day_start = sched - hhmm_to_minutes(flights["sched_dep_time"].to_numpy())
    origin_s, carrier_s, dest_s = (_text(flights[c]) for c in ("origin", "carrier", "dest"))
    origin = codes(vocab["airport"], origin_s)
    dest = codes(vocab["airport"], dest_s)
    # One sort per group column serves all its searches: every query time grows with sched.
    by_origin, by_dest = search_order(origin, sched), search_order(dest, sched)
    out: dict[str, Any] = {
        "carrier": carrier_s,
        "origin": origin_s,
        "dest": dest_s,
    }

    # calendar and schedule
    days = (day_start // MINUTES_PER_DAY).astype(np.int64)
    out["day_of_week"] = ((days + 3) % 7).astype(np.float64)  # 1970-01-01 was a Thursday: Mon=0
    out["sched_dep_minute"] = sched - day_start
    out["sched_arr_minute"] = hhmm_to_minutes(flights["sched_arr_time"].to_numpy())
    out["days_to_holiday"] = days_to_nearest_holiday(days)
    out["distance"] = flights["distance"].to_numpy(dtype=np.float64)

    # weather at the origin: the latest observation at or before the prediction time (or, under
    # weather_at: scheduled_hour, at the scheduled hour), at most a few hours old
    w_keys, w_values = context.weather_index
    hour = sched - (sched % 60)
    seen = pred if params.weather_at == "prediction_time" else hour
    q = (origin.astype(np.int64) << KEY_SHIFT) | seen.astype(np.int64)
    at = sorted_search(w_keys, q, "right", by_origin) - 1
    found = (at >= 0) & (origin >= 0)
    at_c = at.clip(0, max(len(w_keys) - 1, 0))
    if len(w_keys):
        found &= (w_keys[at_c] >> KEY_SHIFT) == origin
        found &= q - w_keys[at_c] <= WEATHER_MAX_AGE_HOURS * 60
        weather = np.where(found[:, None], w_values[at_c], np.nan)
    else:
        weather = np.full((n, len(WEATHER_FEATURES)), np.nan)
    for j, name in enumerate(WEATHER_FEATURES):
        out[name] = weather[:, j]

    # congestion in the published schedule
    scheduled = context.index("origin_scheduled", window)
    out["origin_sched_hour"] = scheduled.sums(origin, hour, hour + 60, by_origin)[:, 0]
    out["origin_sched_day"] = scheduled.sums(
        origin, day_start, day_start + MINUTES_PER_DAY, by_origin
    )[:, 0]

    # aircraft and destination airport
    plane_index, plane_numeric, plane_type = context.plane_table
    p_at = codes(plane_index, flights["tailnum"].to_numpy(dtype=object))
    plane = np.where((p_at >= 0)[:, None], plane_numeric[p_at.clip(0)], np.nan)
    out["plane_year"], out["plane_seats"], out["plane_engines"] = plane.T
    out["plane_type"] = np.where(p_at >= 0, plane_type[p_at.clip(0)], None) if n else plane_type[:0]
    a_index, a_values = context.airport_table
    a_at = codes(a_index, dest_s)
    airport = np.where((a_at >= 0)[:, None], a_values[a_at.clip(0)], np.nan)
    out["dest_lat"], out["dest_lon"], out["dest_alt"] = airport.T

    # operational state at prediction time: departures in [pred - window, pred)
    start = pred - window
    with np.errstate(invalid="ignore", divide="ignore"):
        s = context.index("origin_departed", window).sums(origin, start, pred, by_origin)
        out["origin_recent_departures"] = s[:, 0]
        out["origin_recent_mean_delay"] = s[:, 1] / s[:, 0]
        out["origin_recent_late_share"] = s[:, 2] / s[:, 0]
        s = context.index("dest_departed", window).sums(dest, start, pred, by_dest)
        out["dest_recent_departures"] = s[:, 0]
        out["dest_recent_mean_delay"] = s[:, 1] / s[:, 0]
        co = codes(vocab["carrier_origin"], carrier_s + "|" + origin_s)
        by_co = search_order(co, sched)
        s = context.index("carrier_origin_departed", window).sums(co, start, pred, by_co)
        out["carrier_origin_recent_mean_delay"] = s[:, 1] / s[:, 0]
        # flights scheduled before the prediction time that had not left by then
        started = context.index("origin_wait_start", window).sums(origin, None, pred, by_origin)
        ended = context.index("origin_wait_end", window).sums(origin, None, pred, by_origin)
        waiting = started[:, 0] - ended[:, 0]
        out["origin_waiting"] = waiting
        out["origin_waiting_mean_minutes"] = np.where(
            waiting > 0, pred - (started[:, 1] - ended[:, 1]) / waiting, 0.0
        )
        out["origin_waiting_mean_minutes"] = np.where(
            origin >= 0, out["origin_waiting_mean_minutes"], np.nan
        )

    # the same aircraft's previous scheduled departure (within a day)
    out.update(_tail_features(flights, context, sched, pred))
    arrays = {name: np.asarray(out[name], dtype=object) for name in CATEGORICAL_FEATURES}
    arrays.update({name: np.asarray(out[name], dtype=np.float64) for name in NUMERIC_FEATURES})
    return arrays


def _text(column: pd.Series) -> np.ndarray:
    """``column.astype(str)`` as an object array; without pandas' conversion when every value
    already is a ``str`` (the service's rows: 0.02 ms instead of 0.5 ms for 1,000 flights)."""
    values = column.to_numpy(dtype=object)
    if all(type(v) is str for v in values):
        return values
    return np.asarray(column.astype(str).to_numpy(dtype=object))


def _tail_features(
    flights: pd.DataFrame, context: Context, sched: np.ndarray, pred: np.ndarray
) -> dict[str, np.ndarray]:
    """The same aircraft's previous scheduled departure within a day, and its legs so far."""
    keys, t_sched, t_dep, t_delay, t_distance = context.tail_schedule
    n = len(flights)
    tail = codes(context.vocab["tailnum"], flights["tailnum"].to_numpy(dtype=object))
    base = tail.astype(np.int64) << KEY_SHIFT
    by_tail = search_order(tail, sched)
    at = sorted_search(keys, base | sched.astype(np.int64), "left", by_tail)  # first leg >= sched
    day_start = sched - sched % MINUTES_PER_DAY
    first_today = sorted_search(keys, base | day_start.astype(np.int64), "left", by_tail)
    prev = (at - 1).clip(0, max(len(keys) - 1, 0))
    if len(keys):
        prev_sched, prev_dep = t_sched[prev], t_dep[prev]
        prev_delay, prev_distance = t_delay[prev], t_distance[prev]
        has = (tail >= 0) & (at >= 1) & ((keys[prev] >> KEY_SHIFT) == tail)
        has &= sched - prev_sched <= TAIL_PREV_MAX_GAP_MINUTES
    else:
        prev_sched = prev_dep = prev_delay = prev_distance = np.full(n, np.nan)
        has = np.zeros(n, dtype=bool)
    departed = has & (prev_dep < pred)  # NaN (never left) compares False
    waiting = has & ~departed & (prev_sched < pred)
    round_trip = 2 * (prev_distance / NOMINAL_MILES_PER_MINUTE + NOMINAL_GROUND_MINUTES)
    slack = np.where(has, sched - prev_sched - round_trip, np.nan)
    known_delay = np.where(departed, prev_delay, np.nan)
    return {
        "tail_prev_gap_minutes": np.where(has, sched - prev_sched, np.nan),
        "tail_prev_dep_delay": known_delay,
        "tail_prev_waiting_minutes": np.where(
            waiting, pred - prev_sched, np.where(has, 0.0, np.nan)
        ),
        "tail_prev_distance": np.where(has, prev_distance, np.nan),
        "tail_prev_slack_minutes": slack,
        "tail_prev_expected_late_minutes": known_delay - slack,
        "tail_leg_of_day": np.where(tail >= 0, at - first_today, np.nan).astype(np.float64),
    }


def aircraft_warning(tailnum: str | None) -> str:
    """What serving tells the caller of a flight whose aircraft is unknown (null or a tailnum
    the context's schedule lacks): scored as the training flights featurized that way."""
    what = (
        "tailnum is null"
        if tailnum is None
        else f"tailnum {tailnum!r} is not in the model's context"
    )
    return (
        f"{what}: aircraft unknown, scored without its previous legs (and aircraft data unless "
        "the planes table lists it), as training saw flights featurized with the aircraft unknown"
    )


# ---------------------------------------------------------------- target


def target(flights: pd.DataFrame, params: FeaturizeParams) -> pd.Series:
    """1 if arrival delay >= target_delay_minutes; flights without an arrival delay (cancelled or
    diverted) are 1 under ``cancelled: late`` and NA under ``cancelled: drop`` (caller drops)."""
    if "arr_delay" not in flights.columns:
        raise FeatureError("flights lack column 'arr_delay' needed for the target")
    delay = flights["arr_delay"]
    late = (delay >= params.target_delay_minutes).astype("Int8")
    unknown = delay.isna()
    late[unknown] = 1 if params.cancelled == "late" else pd.NA
    return late.rename("late")

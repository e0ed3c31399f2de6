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

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.context import (
    KEY_SHIFT,
    WEATHER_FEATURES,
    Context,
    FeatureError,
    codes,
    table_search,
)
from flightdelay.core.flights import (
    MINUTES_PER_DAY,
    RAW_COLUMNS,
    days_from_civil,
    days_to_nearest_holiday,
    hhmm_to_minutes,
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
    flights: pd.DataFrame | Mapping[str, Any],
    context: Context,
    params: FeaturizeParams,
    *,
    checked: bool = False,
) -> dict[str, np.ndarray]:
    """:func:`build_features` as one array per FEATURE_COLUMNS name, without the frame: text
    columns as object arrays (str; None or NaN when missing), the others float64. ``flights``:
    a frame, or its RAW_COLUMNS as arrays (what ``frame[c].to_numpy()`` gives: the service's
    columns without a frame around them). ``checked=True`` skips :func:`check_raw` for rows the
    caller has just checked with the same rules (the service:
    :func:`flightdelay.core.schemas.check_flight_rows` on the request's columns)."""
    if not checked:
        check_raw(flights if isinstance(flights, pd.DataFrame) else pd.DataFrame(dict(flights)))
    # one errstate for all (entering one costs as much as several of a flight's array steps):
    # NaN instants cast to int64, and empty windows' means (0 / 0) are NaN by design
    with np.errstate(invalid="ignore", divide="ignore"):
        out = _features(_Raw(flights), context, params)
    arrays = {name: np.asarray(out[name], dtype=object) for name in CATEGORICAL_FEATURES}
    arrays.update({name: np.asarray(out[name], dtype=np.float64) for name in NUMERIC_FEATURES})
    return arrays


def _features(raw: _Raw, context: Context, params: FeaturizeParams) -> dict[str, Any]:
    lead, window = params.lead_minutes, params.window_hours * 60
    look = context.lookups
    # scheduled_departure(), from the columns already read
    dep_minute = hhmm_to_minutes(raw.sched_dep_time)
    sched = days_from_civil(raw.year, raw.month, raw.day) * MINUTES_PER_DAY + dep_minute
    pred = sched - lead
    day_start = sched - dep_minute
    origin_id, dest_id = look.airport(raw.origin), look.airport(raw.dest)
    origin, dest = look.airport_codes[origin_id], look.airport_codes[dest_id]
    out: dict[str, Any] = {"carrier": raw.carrier, "origin": raw.origin, "dest": raw.dest}

    # calendar and schedule
    days = (day_start // MINUTES_PER_DAY).astype(np.int64)
    out["day_of_week"] = ((days + 3) % 7).astype(np.float64)  # 1970-01-01 was a Thursday: Mon=0
    out["sched_dep_minute"] = sched - day_start
    out["sched_arr_minute"] = hhmm_to_minutes(raw.sched_arr_time)
    out["days_to_holiday"] = days_to_nearest_holiday(days)
    out["distance"] = raw.distance

    # weather at the origin: the latest observation at or before the prediction time (or, under
    # weather_at: scheduled_hour, at the scheduled hour), at most a few hours old
    w_keys, _, w_table = context.weather_index
    hour = sched - (sched % 60)
    seen = pred if params.weather_at == "prediction_time" else hour
    seen_at = seen.astype(np.int64)
    q = (origin << KEY_SHIFT) | seen_at
    at = table_search(w_keys, w_table, origin, seen_at, "right") - 1
    if len(w_keys):
        at_c = at.clip(0, len(w_keys) - 1)
        seen_key = w_keys[at_c]
        found = (at >= 0) & (origin >= 0) & ((seen_key >> KEY_SHIFT) == origin)
        found &= q - seen_key <= WEATHER_MAX_AGE_HOURS * 60
        at = np.where(found, at_c, -1)  # -1: the missing row
    weather = look.weather_values[at]
    for j, name in enumerate(WEATHER_FEATURES):
        out[name] = weather[:, j]

    # aircraft and destination airport (row -1 of each table: missing)
    tail_id = look.tail(raw.tailnum)
    plane_row = look.plane_rows[tail_id]
    out["plane_year"], out["plane_seats"], out["plane_engines"] = look.plane_numeric[plane_row].T
    out["plane_type"] = look.plane_type[plane_row]
    out["dest_lat"], out["dest_lon"], out["dest_alt"] = look.airport_values[
        look.airport_rows[dest_id]
    ].T

    # congestion in the published schedule, and the operational state at prediction time:
    # departures in [pred - window, pred)
    start = pred - window
    hourly, daily = context.index("origin_scheduled", window).window_sums(
        origin, [(hour, hour + 60), (day_start, day_start + MINUTES_PER_DAY)]
    )
    out["origin_sched_hour"], out["origin_sched_day"] = hourly[:, 0], daily[:, 0]
    (s,) = context.index("origin_departed", window).window_sums(origin, [(start, pred)])
    out["origin_recent_departures"] = s[:, 0]
    out["origin_recent_mean_delay"] = s[:, 1] / s[:, 0]
    out["origin_recent_late_share"] = s[:, 2] / s[:, 0]
    s = context.index("dest_departed", window).sums(dest, start, pred)
    out["dest_recent_departures"] = s[:, 0]
    out["dest_recent_mean_delay"] = s[:, 1] / s[:, 0]
    if raw.plain_text:
        co = look.carrier_origin_codes(raw.carrier, origin_id)
    else:  # NaN among the text: the joined text, as the vocabulary was built
        co = codes(context.vocab["carrier_origin"], raw.carrier + "|" + raw.origin)
    s = context.index("carrier_origin_departed", window).sums(co, start, pred)
    out["carrier_origin_recent_mean_delay"] = s[:, 1] / s[:, 0]
    # flights scheduled before the prediction time that had not left by then
    (started,) = context.index("origin_wait_start", window).window_sums(origin, [(None, pred)])
    (ended,) = context.index("origin_wait_end", window).window_sums(origin, [(None, pred)])
    waiting = started[:, 0] - ended[:, 0]
    out["origin_waiting"] = waiting
    out["origin_waiting_mean_minutes"] = np.where(
        waiting > 0, pred - (started[:, 1] - ended[:, 1]) / waiting, 0.0
    )
    out["origin_waiting_mean_minutes"] = np.where(
        origin >= 0, out["origin_waiting_mean_minutes"], np.nan
    )

    # the same aircraft's previous scheduled departure (within a day)
    tail = look.tail_codes[tail_id]
    out.update(_tail_features(context, tail, sched, pred))
    return out


class _Raw:
    """The RAW_COLUMNS feature_arrays reads, each read once: text as object arrays of ``str``
    (pandas' ``astype(str)`` where a value is not; ``plain_text``: no value needed it)."""

    def __init__(self, flights: pd.DataFrame | Mapping[str, Any]) -> None:
        frame = flights if isinstance(flights, pd.DataFrame) else None
        small = None if frame is None else _small_frame_columns(frame)

        def column(name: str, dtype: Any = None) -> np.ndarray:
            if frame is not None and small is None:
                return frame[name].to_numpy(dtype=dtype)
            return np.asarray((flights if small is None else small)[name], dtype=dtype)

        def series(name: str) -> pd.Series:
            return pd.Series(column(name, object), dtype=object) if frame is None else frame[name]

        self.year, self.month, self.day = column("year"), column("month"), column("day")
        self.sched_dep_time = column("sched_dep_time")
        self.sched_arr_time = column("sched_arr_time")
        self.distance = column("distance", np.float64)
        self.tailnum = column("tailnum", object)
        self.plain_text = True
        self.origin, self.carrier, self.dest = (
            self._text(column(c, object), partial(series, c)) for c in ("origin", "carrier", "dest")
        )

    def _text(self, values: np.ndarray, series: Callable[[], pd.Series]) -> np.ndarray:
        """``astype(str)`` as an object array; without pandas' conversion when every value
        already is a ``str`` (the service's rows: 0.02 ms instead of 0.5 ms for 1,000 flights)."""
        if all(type(v) is str for v in values):
            return values
        self.plain_text = False
        return np.asarray(series().astype(str).to_numpy(dtype=object))


_READ_COLUMNS = tuple(c for c in RAW_COLUMNS if c != "flight")
_SMALL_FRAME = 64


def _small_frame_columns(frame: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """A small frame's columns, each as ``frame[c].to_numpy()`` gives it, by one ``to_numpy``
    (a column look-up costs ~0.01 ms, ten of them most of a one-flight call); None for a large
    frame, or one whose columns are not each one column of a plain NumPy dtype."""
    if len(frame) > _SMALL_FRAME:
        return None
    dtypes, names = frame.dtypes.to_numpy(), frame.columns
    at: dict[str, tuple[int, np.dtype]] = {}
    for name in _READ_COLUMNS:
        i = names.get_loc(name)
        dtype = dtypes[i] if isinstance(i, int) else None
        if not isinstance(dtype, np.dtype) or dtype.kind not in "iufbO":
            return None
        at[name] = (i, dtype)
    values = frame.to_numpy(dtype=object)  # ints and floats as Python's: exact both ways
    return {name: values[:, i].astype(dtype) for name, (i, dtype) in at.items()}


def _tail_features(
    context: Context, tail: np.ndarray, sched: np.ndarray, pred: np.ndarray
) -> dict[str, np.ndarray]:
    """The same aircraft's previous scheduled departure within a day, and its legs so far."""
    keys, legs, table = context.tail_schedule
    n = len(tail)
    day_start = sched - sched % MINUTES_PER_DAY
    times = np.stack([sched, day_start]).astype(np.int64)
    # the first leg >= sched, and the first of the day
    at, first_today = table_search(keys, table, tail, times)
    prev = (at - 1).clip(0, max(len(keys) - 1, 0))
    if len(keys):
        prev_sched, prev_dep, prev_delay, prev_distance = legs[prev].T
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

"""A raw flight row: its columns, and the time and calendar arithmetic on them (instants as
minutes since 1970 in local time, scheduled and actual departures, distance to a US holiday)."""

from __future__ import annotations

from functools import cache

import holidays as holidays_lib
import numpy as np
import pandas as pd

#: Columns a raw flight row must have (extra columns are ignored).
RAW_COLUMNS: tuple[str, ...] = (
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "distance",
)
#: Outcome columns of a flight: known only after departure, never a model input.
OUTCOME_COLUMNS: tuple[str, ...] = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")

MINUTES_PER_DAY = 24 * 60


def days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = year.astype(np.int64) - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    m = month.astype(np.int64)
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + day.astype(np.int64) - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def hhmm_to_minutes(hhmm: np.ndarray) -> np.ndarray:
    """``HHMM`` clock times (e.g. 1545, 2400) to minutes after midnight."""
    hhmm = np.asarray(hhmm, dtype=np.float64)
    return (hhmm // 100) * 60 + hhmm % 100


def to_minutes(instants: pd.Series | np.ndarray) -> np.ndarray:
    """Naive local datetimes to float minutes since 1970 (NaT -> NaN)."""
    values = pd.to_datetime(pd.Series(instants)).to_numpy(dtype="datetime64[m]")
    minutes = values.astype(np.int64).astype(np.float64)
    minutes[np.isnat(values)] = np.nan
    return minutes


def scheduled_departure(flights: pd.DataFrame) -> np.ndarray:
    """Scheduled departure instants (minutes since 1970, local time) of raw flight rows."""
    days = days_from_civil(
        flights["year"].to_numpy(), flights["month"].to_numpy(), flights["day"].to_numpy()
    )
    return days * MINUTES_PER_DAY + hhmm_to_minutes(flights["sched_dep_time"].to_numpy())


def actual_departure(flights: pd.DataFrame) -> np.ndarray:
    """Actual departure instants (minutes since 1970; NaN if the flight never left).

    ``dep_time`` is a wall-clock ``HHMM`` on the scheduled date, so a flight scheduled at 23:50
    that left at 00:20 shows ``dep_time`` 20: the day is recovered from ``dep_delay``
    (``sched + dep_delay`` is the same instant, modulo whole days).
    """
    sched = scheduled_departure(flights)
    day_start = sched - hhmm_to_minutes(flights["sched_dep_time"].to_numpy())
    on_sched_day = day_start + hhmm_to_minutes(flights["dep_time"].to_numpy())
    delay = flights["dep_delay"].to_numpy(dtype=np.float64)
    days_off = np.round((sched + delay - on_sched_day) / MINUTES_PER_DAY)
    return on_sched_day + days_off * MINUTES_PER_DAY


@cache
def _holiday_days(first_year: int, last_year: int) -> np.ndarray:
    """US federal holidays (observed dates included) as sorted days since 1970."""
    dates = holidays_lib.country_holidays("US", years=range(first_year, last_year + 1))
    return np.sort(
        np.array([np.datetime64(d, "D").astype(np.int64) for d in dates], dtype=np.int64)
    )


def days_to_nearest_holiday(days: np.ndarray) -> np.ndarray:
    """Absolute distance in days to the nearest US federal holiday (0 on the holiday)."""
    if len(days) == 0:
        return np.zeros(0)
    years = 1970 + days // 365.2425
    table = _holiday_days(int(years.min()) - 1, int(years.max()) + 1)
    after = np.searchsorted(table, days, side="left").clip(0, len(table) - 1)
    before = (after - 1).clip(0, len(table) - 1)
    return np.minimum(np.abs(table[after] - days), np.abs(days - table[before])).astype(np.float64)

"""The lookup tables the features need besides the flight row (:class:`Context`: departures log,
weather, planes, airports): built from the raw tables, indexed once for ``searchsorted`` joins,
and sampled into raw flights of its own schedule (:func:`check_rows`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.flights import (
    MINUTES_PER_DAY,
    RAW_COLUMNS,
    actual_departure,
    days_from_civil,
    scheduled_departure,
    to_minutes,
)

#: The hourly observations of the weather table, each also a feature (the origin's weather).
WEATHER_FEATURES: tuple[str, ...] = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)

#: Columns of the context tables (what ``Context.from_tables`` needs and what is saved).
DEPARTURE_COLUMNS: tuple[str, ...] = (
    "origin",
    "dest",
    "carrier",
    "tailnum",
    "sched_dep_at",
    "dep_at",
    "dep_delay",
    "distance",
)
WEATHER_COLUMNS: tuple[str, ...] = ("origin", "time_hour_local", *WEATHER_FEATURES)
PLANE_COLUMNS: tuple[str, ...] = ("tailnum", "year", "type", "engines", "seats")
AIRPORT_COLUMNS: tuple[str, ...] = ("faa", "lat", "lon", "alt")

LATE_DEPARTURE_MINUTES = 15  # the FAA's on-time definition
#: Composite key = group code << KEY_SHIFT | minutes since 1970 (fits: minutes < 2**32).
KEY_SHIFT = 32


class FeatureError(ValueError):
    """Raw flight rows or context tables lack a column or hold unusable values."""


# Up to this many values, dict lookups beat hashing them into a pandas Index (measured: 0.05 ms
# against 0.3 ms for 1,000 values); above it (training's year of flights) the Index wins.
_SMALL_BATCH = 20_000


@dataclass(frozen=True)
class _Vocabulary:
    """Value -> integer code (-1 for unknown or missing), fast for one row and for many."""

    index: pd.Index
    lookup: dict[Any, int]

    @classmethod
    def of(cls, values: Any) -> _Vocabulary:
        index = pd.Index(
            pd.unique(pd.Series(values, dtype=object).dropna().astype(str)), dtype=object
        )
        return cls(index, {v: i for i, v in enumerate(index)})

    def codes(self, values: Any) -> np.ndarray:
        values = np.asarray(values, dtype=object)
        if len(values) <= _SMALL_BATCH:
            get = self.lookup.get
            return np.array([get(v, -1) for v in values], dtype=np.int64).reshape(len(values))
        return self.index.get_indexer(pd.Index(values, dtype=object)).astype(np.int64)


def codes(vocabulary: _Vocabulary, values: Any) -> np.ndarray:
    """Each value's integer code in ``vocabulary`` (-1 for unknown or missing)."""
    return vocabulary.codes(values)


def sorted_search(
    keys: np.ndarray, queries: np.ndarray, side: Any, order: np.ndarray | None = None
) -> np.ndarray:
    """``np.searchsorted(keys, queries, side)``; a batch is searched in sorted order, which keeps
    the binary searches' paths in cache (2x faster on 1,000 flights in a year's schedule).
    ``order``: a permutation that sorts ``queries`` (:func:`search_order`; any permutation gives
    the same answer, a sorting one the speed), else they are sorted here."""
    if len(queries) <= _SORTED_SEARCH_MIN:
        return np.searchsorted(keys, queries, side=side)
    if order is None:
        order = np.argsort(queries, kind="stable")
    out = np.empty(len(queries), dtype=np.intp)
    out[order] = np.searchsorted(keys, queries[order], side=side)
    return out


def search_order(group: np.ndarray, time: np.ndarray) -> np.ndarray | None:
    """The rows' order by (group, time) for :func:`sorted_search`: it sorts the queries
    ``group << KEY_SHIFT | t`` of every ``t`` that grows with ``time`` (a shift, a floor), so one
    sort serves all of a batch's searches by that group; None when too few rows to sort."""
    if len(group) <= _SORTED_SEARCH_MIN:
        return None
    with np.errstate(invalid="ignore"):  # a NaN time only makes the order slower, not wrong
        at = time.astype(np.int64)
    return np.argsort((group.astype(np.int64) << KEY_SHIFT) | at, kind="stable")


_SORTED_SEARCH_MIN = 64


#: Largest minute table (group codes x minutes) a window index keeps beside its keys: the three
#: origins' nine months (about 1.2 million positions, 4.7 MB as int32) fit, the ~100
#: destinations' or the aircraft's do not (those stay binary searches).
_MINUTE_TABLE_MAX = 2**21
_TIME_BITS = (1 << KEY_SHIFT) - 1


@dataclass(frozen=True)
class _MinuteTable:
    """``np.searchsorted(keys, g << KEY_SHIFT | t, "left")`` for every group code ``g`` below
    ``len(table)`` and every minute ``t`` (clipped to [t0, t0 + span], which leaves the answer
    unchanged): one look-up instead of a binary search through the keys' cache lines."""

    t0: int
    table: np.ndarray  # (groups, span + 1) positions

    @classmethod
    def build(cls, keys: np.ndarray, limit: int) -> _MinuteTable | None:
        if not len(keys) or keys[0] < 0:  # a negative key: a time before 1970, no table
            return None
        time = keys & _TIME_BITS
        groups, t0 = int(keys[-1] >> KEY_SHIFT) + 1, int(time.min())
        span = int(time.max()) + 1 - t0  # column `span`: after every event of the group
        if groups * (span + 1) > limit:
            return None
        grid = (np.arange(groups, dtype=np.int64)[:, None] << KEY_SHIFT) | np.arange(
            t0, t0 + span + 1, dtype=np.int64
        )
        table = np.searchsorted(keys, grid.reshape(-1)).astype(np.int32)
        return cls(t0, table.reshape(groups, span + 1))

    def positions(self, keys: np.ndarray, group: np.ndarray, time: np.ndarray) -> np.ndarray:
        """``np.searchsorted(keys, group << KEY_SHIFT | time, "left")`` (``time``: int64)."""
        groups, columns = self.table.shape
        inside = (group >= 0) & (group < groups) & (time >= 0) & (time <= _TIME_BITS)
        if inside.all():
            return self.table[group, np.clip(time - self.t0, 0, columns - 1)].astype(np.intp)
        out = np.searchsorted(keys, (group.astype(np.int64) << KEY_SHIFT) | time)
        g, t = group[inside], time[inside]
        out[inside] = self.table[g, np.clip(t - self.t0, 0, columns - 1)]
        return out


@dataclass(frozen=True)
class _WindowIndex:
    """Events sorted by (group, time) with running sums: any [t0, t1) window sum by searchsorted
    (or, for few groups, by a look-up in the positions of every minute: :class:`_MinuteTable`)."""

    keys: np.ndarray
    cum: np.ndarray  # shape (n + 1, k): cumulative sums of the k value columns
    starts: np.ndarray  # per group code: the position of its first event (searchsorted of g << 32)
    minutes: _MinuteTable | None = None

    @classmethod
    def build(cls, group: np.ndarray, time: np.ndarray, values: np.ndarray) -> _WindowIndex:
        ok = (group >= 0) & np.isfinite(time)
        keys = (group[ok].astype(np.int64) << KEY_SHIFT) | time[ok].astype(np.int64)
        order = np.argsort(keys, kind="stable")
        vals = values[ok][order].astype(np.float64)
        cum = np.vstack([np.zeros((1, vals.shape[1])), np.cumsum(vals, axis=0)])
        keys = keys[order]
        codes = np.arange(int(group.max()) + 1 if len(group) else 0, dtype=np.int64)
        return cls(
            keys=keys,
            cum=cum,
            starts=np.searchsorted(keys, codes << KEY_SHIFT),
            minutes=_MinuteTable.build(keys, _MINUTE_TABLE_MAX),
        )

    def sums(
        self,
        group: np.ndarray,
        start: np.ndarray | None,
        end: np.ndarray,
        order: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sums of the value columns over events of ``group`` with ``start <= time < end``
        (``start`` None: from time 0); ``order``: :func:`search_order` of the rows, or None."""
        base = group.astype(np.int64) << KEY_SHIFT
        if start is None:
            lo = self._group_starts(group, base)
        else:
            lo = self._positions(group, base, start, order)
        hi = self._positions(group, base, end, order)
        out = self.cum[hi] - self.cum[lo]
        out[group < 0] = np.nan
        return out

    def _positions(
        self, group: np.ndarray, base: np.ndarray, time: np.ndarray, order: np.ndarray | None
    ) -> np.ndarray:
        """``np.searchsorted(self.keys, base | time.astype(np.int64), "left")``."""
        at = time.astype(np.int64)
        if self.minutes is not None:
            return self.minutes.positions(self.keys, group, at)
        return sorted_search(self.keys, base | at, "left", order)

    def _group_starts(self, group: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``np.searchsorted(self.keys, base)`` (time 0 of each row's group), by table look-up."""
        known = (group >= 0) & (group < len(self.starts))
        if known.all():
            return self.starts[group]
        lo = np.searchsorted(self.keys, base)
        lo[known] = self.starts[group[known]]
        return lo


@dataclass(frozen=True)
class Context:
    """Lookup tables the features need besides the flight row itself.

    departures: one row per scheduled flight: origin, dest, carrier, tailnum, sched_dep_at,
        dep_at (naive local datetimes; dep_at NaT while not departed or if cancelled), dep_delay.
    weather: hourly origin observations: origin, time_hour_local (naive local datetime), weather.
    planes: tailnum, year, type, engines, seats.  airports: faa, lat, lon, alt.
    Build it with :meth:`from_tables`, which checks the columns; indexes are built lazily once.
    """

    departures: pd.DataFrame
    weather: pd.DataFrame
    planes: pd.DataFrame
    airports: pd.DataFrame
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    TABLES: tuple[str, ...] = ("departures", "weather", "planes", "airports")

    @classmethod
    def from_tables(cls, tables: Mapping[str, pd.DataFrame]) -> Context:
        required = {
            "departures": DEPARTURE_COLUMNS,
            "weather": WEATHER_COLUMNS,
            "planes": PLANE_COLUMNS,
            "airports": AIRPORT_COLUMNS,
        }
        for name, columns in required.items():
            if name not in tables:
                raise FeatureError(f"context table {name!r} is missing")
            missing = [c for c in columns if c not in tables[name].columns]
            if missing:
                raise FeatureError(f"context table {name!r} lacks column(s) {missing}")
        return cls(
            **{
                name: tables[name].loc[:, list(cols)].reset_index(drop=True)
                for name, cols in required.items()
            }
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in self.TABLES}

    # Indexes: frozen dataclass, so they live in a private dict filled on first use.
    def _get(self, name: str, build: Any) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    @property
    def vocab(self) -> dict[str, _Vocabulary]:
        def build() -> dict[str, _Vocabulary]:
            d = self.departures
            airports = pd.concat([d["origin"], d["dest"], self.weather["origin"]])
            return {
                "airport": _Vocabulary.of(airports),
                "carrier_origin": _Vocabulary.of(
                    d["carrier"].astype(str) + "|" + d["origin"].astype(str)
                ),
                "tailnum": _Vocabulary.of(d["tailnum"]),
            }

        return self._get("vocab", build)

    @property
    def departure_times(self) -> dict[str, np.ndarray]:
        def build() -> dict[str, np.ndarray]:
            d = self.departures
            return {
                "sched": to_minutes(d["sched_dep_at"]),
                "dep": to_minutes(d["dep_at"]),
                "delay": d["dep_delay"].to_numpy(dtype=np.float64),
            }

        return self._get("departure_times", build)

    def index(self, name: str, window: int) -> _WindowIndex:
        """A window index over the departures log (``window`` in minutes caps waiting time)."""
        build = lambda: self._build_index(name, window)  # noqa: E731
        return self._get(f"{name}:{window}", build)

    def _build_index(self, name: str, window: int) -> _WindowIndex:
        d, t, v = self.departures, self.departure_times, self.vocab
        sched, dep, delay = t["sched"], t["dep"], t["delay"]
        departed = np.isfinite(dep)
        origin = codes(v["airport"], d["origin"])
        if name == "origin_departed":  # value columns: count, delay, late
            vals = np.column_stack(
                [np.ones_like(delay), delay, (delay >= LATE_DEPARTURE_MINUTES).astype(float)]
            )
            return _WindowIndex.build(np.where(departed, origin, -1), dep, vals)
        if name == "dest_departed":
            dest = codes(v["airport"], d["dest"])
            vals = np.column_stack([np.ones_like(delay), delay])
            return _WindowIndex.build(np.where(departed, dest, -1), dep, vals)
        if name == "carrier_origin_departed":
            group = codes(v["carrier_origin"], d["carrier"].astype(str) + "|" + d["origin"])
            vals = np.column_stack([np.ones_like(delay), delay])
            return _WindowIndex.build(np.where(departed, group, -1), dep, vals)
        if name == "origin_scheduled":
            return _WindowIndex.build(origin, sched, np.ones((len(d), 1)))
        if name in ("origin_wait_start", "origin_wait_end"):
            # A flight "waits" from its scheduled instant until it leaves, for at most `window`
            # minutes (so a cancelled flight stops counting): waiting(p) = #starts<=p - #ends<=p.
            end = np.minimum(np.where(departed, np.maximum(dep, sched), np.inf), sched + window)
            time = sched if name == "origin_wait_start" else end
            return _WindowIndex.build(origin, time, np.column_stack([np.ones_like(sched), sched]))
        raise KeyError(name)

    @property
    def tail_schedule(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Departures sorted by (tailnum, scheduled instant): keys, sched, dep, delay, distance."""

        def build() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            t = self.departure_times
            tail = codes(self.vocab["tailnum"], self.departures["tailnum"])
            ok = (tail >= 0) & np.isfinite(t["sched"])
            keys = (tail[ok].astype(np.int64) << KEY_SHIFT) | t["sched"][ok].astype(np.int64)
            order = np.argsort(keys, kind="stable")
            distance = self.departures["distance"].to_numpy(dtype=np.float64)[ok][order]
            picked = (t[k][ok][order] for k in ("sched", "dep", "delay"))
            return (keys[order], *picked, distance)

        return self._get("tail", build)

    @property
    def weather_index(self) -> tuple[np.ndarray, np.ndarray]:
        def build() -> tuple[np.ndarray, np.ndarray]:
            w = self.weather
            origin = codes(self.vocab["airport"], w["origin"])
            hours = to_minutes(w["time_hour_local"])
            ok = (origin >= 0) & np.isfinite(hours)
            keys = (origin[ok].astype(np.int64) << KEY_SHIFT) | hours[ok].astype(np.int64)
            order = np.argsort(keys, kind="stable")
            values = w.loc[ok, list(WEATHER_FEATURES)].to_numpy(dtype=np.float64)[order]
            return keys[order], values

        return self._get("weather", build)

    @property
    def plane_table(self) -> tuple[_Vocabulary, np.ndarray, np.ndarray]:
        def build() -> tuple[_Vocabulary, np.ndarray, np.ndarray]:
            p = self.planes.dropna(subset=["tailnum"]).drop_duplicates("tailnum")
            numeric = p[["year", "seats", "engines"]].to_numpy(dtype=np.float64)
            return _Vocabulary.of(p["tailnum"]), numeric, p["type"].to_numpy(dtype=object)

        return self._get("planes", build)

    @property
    def airport_table(self) -> tuple[_Vocabulary, np.ndarray]:
        def build() -> tuple[_Vocabulary, np.ndarray]:
            a = self.airports.dropna(subset=["faa"]).drop_duplicates("faa")
            return _Vocabulary.of(a["faa"]), a[["lat", "lon", "alt"]].to_numpy(np.float64)

        return self._get("airports", build)


def departures_log(flights: pd.DataFrame) -> pd.DataFrame:
    """The context's departures table from raw flights with outcomes (dep_time, dep_delay)."""
    missing = [c for c in (*RAW_COLUMNS, "dep_time", "dep_delay") if c not in flights.columns]
    if missing:
        raise FeatureError(f"flights lack column(s) {missing} needed for the departures log")
    as_ns = lambda m: pd.to_datetime(pd.Series(m * 60, dtype="float64"), unit="s")  # noqa: E731
    return pd.DataFrame(
        {
            "origin": flights["origin"].astype(str).to_numpy(),
            "dest": flights["dest"].astype(str).to_numpy(),
            "carrier": flights["carrier"].astype(str).to_numpy(),
            "tailnum": flights["tailnum"].to_numpy(dtype=object),
            "sched_dep_at": as_ns(scheduled_departure(flights)).to_numpy(),
            "dep_at": as_ns(actual_departure(flights)).to_numpy(),
            "dep_delay": flights["dep_delay"].to_numpy(dtype=np.float64),
            "distance": flights["distance"].to_numpy(dtype=np.float64),
        }
    )


def weather_table(weather: pd.DataFrame) -> pd.DataFrame:
    """The context's weather table from raw hourly weather (local year/month/day/hour)."""
    missing = [
        c
        for c in ("origin", "year", "month", "day", "hour", *WEATHER_FEATURES)
        if c not in weather.columns
    ]
    if missing:
        raise FeatureError(f"weather lacks column(s) {missing}")
    days = days_from_civil(
        weather["year"].to_numpy(), weather["month"].to_numpy(), weather["day"].to_numpy()
    )
    minutes = days * MINUTES_PER_DAY + weather["hour"].to_numpy(dtype=np.int64) * 60
    table = weather.loc[:, ["origin", *WEATHER_FEATURES]].reset_index(drop=True)
    table.insert(1, "time_hour_local", pd.to_datetime(minutes * 60, unit="s"))
    return table.loc[:, list(WEATHER_COLUMNS)]


def build_context(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, airports: pd.DataFrame
) -> Context:
    """The Context from raw tables (flights with outcomes, hourly weather, planes, airports)."""
    return Context.from_tables(
        {
            "departures": departures_log(flights),
            "weather": weather_table(weather),
            "planes": planes,
            "airports": airports,
        }
    )


def check_rows(context: Context, n: int = 256, seed: int = 0) -> pd.DataFrame:
    """Raw flights made from the context's own schedule (plus unseen carriers and destinations,
    null tails and out-of-range dates): the rows the service's fast path must score as the
    pipeline does, and the flights the canary's and the shadow's callers send."""
    rng = np.random.default_rng(seed)
    departures = context.departures.dropna(subset=["sched_dep_at"])
    picked = departures.iloc[rng.choice(len(departures), min(n, len(departures)), replace=False)]
    at = pd.to_datetime(picked["sched_dep_at"])
    flights = pd.DataFrame(
        {
            "year": at.dt.year.to_numpy(np.int64),
            "month": at.dt.month.to_numpy(np.int64),
            "day": at.dt.day.to_numpy(np.int64),
            "sched_dep_time": (at.dt.hour * 100 + at.dt.minute).to_numpy(np.int64),
            "sched_arr_time": (((at.dt.hour + 3) % 24) * 100 + at.dt.minute).to_numpy(np.int64),
            "carrier": picked["carrier"].to_numpy(object),
            "flight": np.ones(len(picked), np.int64),
            "tailnum": picked["tailnum"].to_numpy(object),
            "origin": picked["origin"].to_numpy(object),
            "dest": picked["dest"].to_numpy(object),
            "distance": rng.choice([94.0, 502.0, 1028.0, 1400.0, 2586.0], len(picked)),
        }
    )
    flights.loc[flights.index[::9], "carrier"] = "Z9"
    flights.loc[flights.index[::10], "dest"] = "ZZZ"
    flights.loc[flights.index[::11], "tailnum"] = None
    flights.loc[flights.index[::12], "year"] = 2030
    return flights

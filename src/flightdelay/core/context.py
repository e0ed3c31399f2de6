"""The lookup tables the features need besides the flight row (:class:`Context`: departures log,
weather, planes, airports): built from the raw tables, indexed once for ``searchsorted`` joins,
and sampled into raw flights of its own schedule (:func:`check_rows`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
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


# Up to this many values dict look-ups beat hashing them into a pandas Index; above, it wins.
_SMALL_BATCH = 20_000
_SORTED_SEARCH_MIN = 64  # up to this many rows, plain searches: the fewest calls


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
            return _look_up(self.lookup, values, -1).astype(np.int64)
        return self.index.get_indexer(pd.Index(values, dtype=object)).astype(np.int64)


def _look_up(ids: Mapping[Any, int], values: np.ndarray, missing: int) -> np.ndarray:
    """``[ids.get(v, missing) for v in values]`` as an intp array, without the list."""
    n = len(values)
    return np.fromiter(map(ids.get, values.reshape(n), repeat(missing, n)), np.intp, n)


def codes(vocabulary: _Vocabulary, values: Any) -> np.ndarray:
    """Each value's integer code in ``vocabulary`` (-1 for unknown or missing)."""
    return vocabulary.codes(values)


def sorted_search(
    keys: np.ndarray, queries: np.ndarray, side: Any, order: np.ndarray | None = None
) -> np.ndarray:
    """``np.searchsorted(keys, queries, side)``, a batch in sorted order (the searches' paths stay
    in cache); ``order``: a permutation that sorts ``queries`` (any gives the same answer), or
    None: sorted here."""
    if len(queries) <= _SORTED_SEARCH_MIN:
        return np.searchsorted(keys, queries, side=side)
    if order is None:
        order = np.argsort(queries, kind="stable")
    out = np.empty(len(queries), dtype=np.intp)
    out[order] = np.searchsorted(keys, queries[order], side=side)
    return out


def search_order(group: np.ndarray, time: np.ndarray) -> np.ndarray | None:
    """The rows' order by (group, time) for :func:`sorted_search`: it sorts ``group << KEY_SHIFT
    | t`` for every ``t`` growing with ``time`` (one sort, many searches); None for few rows."""
    if len(group) <= _SORTED_SEARCH_MIN:
        return None
    with np.errstate(invalid="ignore"):  # a NaN time only makes the order slower, not wrong
        at = time.astype(np.int64)
    return np.argsort((group.astype(np.int64) << KEY_SHIFT) | at, kind="stable")


#: Largest minute table (group codes x minutes) beside keys: the three origins' nine months (1.2
#: million positions, 4.7 MB as int32) fit; more groups (the ~100 destinations, the aircraft) get
#: coarser buckets, at most _BUCKET_TABLE_MAX positions (2 MB), searched within.
_MINUTE_TABLE_MAX = 2**21
_BUCKET_TABLE_MAX = 2**19
_TIME_BITS = (1 << KEY_SHIFT) - 1


@dataclass(frozen=True)
class _SearchTable:
    """``np.searchsorted(keys, g << KEY_SHIFT | t, side)`` by a look-up in the positions of
    every ``step``-th minute (``t`` clipped to the span: same answer), then for a step over a
    minute ``rounds`` halvings inside the bucket, all queries at once. A binary search through
    all keys chains ~18 dependent loads per query that miss a busy machine's cache."""

    t0: int
    step: int
    rounds: int
    table: np.ndarray  # (groups, buckets + 1) int32: positions of g << KEY_SHIFT | bucket edge
    padded: np.ndarray | None  # keys + [int64 max]: the end of the last bucket reads as >= q

    @classmethod
    def build(cls, keys: np.ndarray) -> _SearchTable | None:
        if not len(keys) or keys[0] < 0:  # a negative key: a time before 1970, no table
            return None
        time = keys & _TIME_BITS
        groups, t0 = int(keys[-1] >> KEY_SHIFT) + 1, int(time.min())
        span = int(time.max()) + 1 - t0  # the last edge: after every event of the group
        if groups * (span + 1) <= _MINUTE_TABLE_MAX:
            step = 1
        elif 2 * groups <= _BUCKET_TABLE_MAX:
            step = -(-groups * (span + 1) // _BUCKET_TABLE_MAX)
        else:
            return None
        buckets = -(-span // step)
        edges = t0 + step * np.arange(buckets + 1, dtype=np.int64)
        grid = (np.arange(groups, dtype=np.int64)[:, None] << KEY_SHIFT) | edges
        table = np.searchsorted(keys, grid.reshape(-1)).astype(np.int32).reshape(groups, -1)
        # A minute's bucket holds only keys of that minute, none below a query in it.
        longest = int((table[:, 1:] - table[:, :-1]).max()) if step > 1 else 0
        padded = np.append(keys, np.iinfo(np.int64).max) if longest else None
        return cls(t0, step, longest.bit_length(), table, padded)

    def search(self, keys: np.ndarray, group: np.ndarray, t: np.ndarray, side: Any) -> np.ndarray:
        """``np.searchsorted(keys, group << KEY_SHIFT | t, side)`` (``t``: int64, one row per
        row of ``group`` or a stack of such rows). Integer keys: first > q = first >= q + 1."""
        at = t + 1 if side == "right" else t
        inside = (group >= 0) & (group < len(self.table)) & (at >= 0) & (at <= _TIME_BITS)
        if inside.all():
            return self._search(np.broadcast_to(group, at.shape), at)
        out = np.searchsorted(keys, (group.astype(np.int64) << KEY_SHIFT) | t, side)
        out[inside] = self._search(np.broadcast_to(group, at.shape)[inside], at[inside])
        return out

    def _search(self, group: np.ndarray, time: np.ndarray) -> np.ndarray:
        last = self.table.shape[1] - 1
        bucket = np.clip((time - self.t0) // self.step, 0, last)
        lo = self.table[group, bucket].astype(np.intp)
        if self.padded is None:
            return lo
        # The answer lies in [lo, hi]; each round halves that range, which starts below 2**rounds.
        hi = self.table[group, np.minimum(bucket + 1, last)].astype(np.intp)
        query = (group.astype(np.int64) << KEY_SHIFT) | time
        for _ in range(self.rounds):
            mid = (lo + hi) >> 1
            below = self.padded[mid] < query
            lo = np.where(below, mid + 1, lo)
            hi = np.where(below, hi, mid)
        return lo


def table_search(
    keys: np.ndarray,
    table: _SearchTable | None,
    group: np.ndarray,
    time: np.ndarray,
    side: Any = "left",
    order: np.ndarray | None = None,
) -> np.ndarray:
    """``np.searchsorted(keys, group << KEY_SHIFT | time, side)`` (int64 ``time``, or a stack of
    times per row): a small batch by plain searches (fewest calls), a larger one through
    ``table``, else in sorted order (``order``: :func:`search_order`, or None: sorted here)."""
    queries = (group.astype(np.int64) << KEY_SHIFT) | time
    if len(group) <= _SORTED_SEARCH_MIN:
        return np.searchsorted(keys, queries, side)
    if table is not None:
        return table.search(keys, group, time, side)
    if queries.ndim == 1:
        return sorted_search(keys, queries, side, order)
    order = search_order(group, time[0]) if order is None else order
    return np.stack([sorted_search(keys, q, side, order) for q in queries])


@dataclass(frozen=True)
class _WindowIndex:
    """Events sorted by (group, time) with running sums: any [t0, t1) window sum by searchsorted
    (through :class:`_SearchTable`, a look-up in the positions of every minute or bucket)."""

    keys: np.ndarray
    cum: np.ndarray  # shape (n + 1, k): cumulative sums of the k value columns
    table: _SearchTable | None = None
    counts: bool = False  # one value column, cum[i] == i: a window's sum is hi - lo, no look-up

    @classmethod
    def build(cls, group: np.ndarray, time: np.ndarray, values: np.ndarray) -> _WindowIndex:
        ok = (group >= 0) & np.isfinite(time)
        keys = (group[ok].astype(np.int64) << KEY_SHIFT) | time[ok].astype(np.int64)
        order = np.argsort(keys, kind="stable")
        vals = values[ok][order].astype(np.float64)
        cum = np.vstack([np.zeros((1, vals.shape[1])), np.cumsum(vals, axis=0)])
        keys = keys[order]
        return cls(
            keys=keys,
            cum=cum,
            table=_SearchTable.build(keys),
            counts=cum.shape[1] == 1 and np.array_equal(cum[:, 0], np.arange(len(cum))),
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
        return self.window_sums(group, [(start, end)], order)[0]

    def window_sums(
        self,
        group: np.ndarray,
        windows: Sequence[tuple[np.ndarray | None, np.ndarray]],
        order: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """:meth:`sums` of each ``(start, end)`` window of the same rows, all their positions
        found in one search (a call's fixed cost is most of a one-flight request's time)."""
        # start None: time 0, whose search gives the group's first event (no separate look-up)
        zero = np.zeros(len(group), dtype=np.int64)
        times = [zero if t is None else t for window in windows for t in window]
        found = iter(
            table_search(
                self.keys, self.table, group, np.stack(times).astype(np.int64), order=order
            )
        )
        unknown = group < 0
        out = []
        for _ in windows:
            lo, hi = next(found), next(found)
            if self.counts:  # float(hi) - float(lo): exactly what the rows of cum give
                sums = (hi - lo)[:, None].astype(np.float64)
            else:
                sums = self.cum[hi] - self.cum[lo]
            sums[unknown] = np.nan
            out.append(sums)
        return out


@dataclass(frozen=True)
class _Lookups:
    """The text look-ups merged so that a request hashes each value once: an airport name gives
    one id for its code, its airport row and (with a carrier's id) its ``carrier|origin`` code;
    a tail number one for its code and plane row. The last id is "unknown" (codes -1); value
    tables end with a missing row (NaN, None), so -1 reads as missing without a mask."""

    airport_ids: dict[str, int]
    airport_codes: np.ndarray  # per airport id: vocab["airport"] code
    airport_rows: np.ndarray  # per airport id: row of airport_values
    airport_values: np.ndarray  # lat, lon, alt
    carrier_ids: dict[str, int]
    carrier_origin: np.ndarray  # [carrier id, airport id] -> vocab["carrier_origin"] code
    tail_ids: dict[str, int]
    tail_codes: np.ndarray  # per tail id: vocab["tailnum"] code
    plane_rows: np.ndarray  # per tail id: row of plane_numeric and plane_type
    plane_numeric: np.ndarray  # year, seats, engines
    plane_type: np.ndarray
    weather_values: np.ndarray  # Context.weather_index's values

    @classmethod
    def build(cls, context: Context) -> _Lookups:
        vocab = context.vocab
        airports, carrier_origins = vocab["airport"].lookup, vocab["carrier_origin"].lookup
        a = context.airports.dropna(subset=["faa"]).drop_duplicates("faa")
        airport_vocab = _Vocabulary.of(a["faa"])
        airport_values = a[["lat", "lon", "alt"]].to_numpy(np.float64)
        p = context.planes.dropna(subset=["tailnum"]).drop_duplicates("tailnum")
        tails, plane_vocab = vocab["tailnum"].lookup, _Vocabulary.of(p["tailnum"])
        numeric = p[["year", "seats", "engines"]].to_numpy(dtype=np.float64)
        # Each split of a "carrier|origin" name at a "|" is a pair spelling it: pair = joined.
        splits = [
            (name[:i], name[i + 1 :], code)
            for name, code in carrier_origins.items()
            for i, char in enumerate(name)
            if char == "|"
        ]
        airport_ids = _ids([*airports, *airport_vocab.lookup, *(o for _, o, _ in splits)])
        carrier_ids = _ids(c for c, _, _ in splits)
        table = np.full((len(carrier_ids) + 1, len(airport_ids) + 1), -1, dtype=np.int64)
        for carrier, origin, code in splits:
            table[carrier_ids[carrier], airport_ids[origin]] = code
        tail_ids = _ids([*tails, *plane_vocab.lookup])
        return cls(
            airport_ids=airport_ids,
            airport_codes=_codes_of(airport_ids, airports),
            airport_rows=_codes_of(airport_ids, airport_vocab.lookup),
            airport_values=_with_missing_row(airport_values),
            carrier_ids=carrier_ids,
            carrier_origin=table,
            tail_ids=tail_ids,
            tail_codes=_codes_of(tail_ids, tails),
            plane_rows=_codes_of(tail_ids, plane_vocab.lookup),
            plane_numeric=_with_missing_row(numeric),
            plane_type=np.array([*p["type"].to_numpy(dtype=object), None], dtype=object),
            weather_values=_with_missing_row(context.weather_index[1]),
        )

    def airport(self, values: np.ndarray) -> np.ndarray:
        return _look_up(self.airport_ids, values, len(self.airport_ids))

    def tail(self, values: np.ndarray) -> np.ndarray:
        return _look_up(self.tail_ids, values, len(self.tail_ids))

    def carrier_origin_codes(self, carrier: np.ndarray, origin_ids: np.ndarray) -> np.ndarray:
        """The ``carrier|origin`` codes of text carriers and their origins' airport ids."""
        return self.carrier_origin[_look_up(self.carrier_ids, carrier, -1), origin_ids]


def _ids(values: Any) -> dict[str, int]:
    return {v: i for i, v in enumerate(dict.fromkeys(values))}


def _codes_of(ids: Mapping[str, int], codes: Mapping[str, int]) -> np.ndarray:
    """Per id, and the unknown id after them: the value's code in ``codes``, or -1."""
    return np.array([*(codes.get(v, -1) for v in ids), -1], dtype=np.int64)


def _with_missing_row(values: np.ndarray) -> np.ndarray:
    return np.vstack([values, np.full((1, values.shape[1]), np.nan)])


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
    def lookups(self) -> _Lookups:
        """The look-ups of :func:`flightdelay.core.features.feature_arrays`, merged."""
        return self._get("lookups", lambda: _Lookups.build(self))

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
    def tail_schedule(self) -> tuple[np.ndarray, np.ndarray, _SearchTable | None]:
        """Departures sorted by (tailnum, scheduled instant): their keys, (sched, dep, delay,
        distance) side by side (a leg's four values in one cache line), the keys' search table."""

        def build() -> tuple[np.ndarray, np.ndarray, _SearchTable | None]:
            t = self.departure_times
            tail = codes(self.vocab["tailnum"], self.departures["tailnum"])
            ok = (tail >= 0) & np.isfinite(t["sched"])
            keys = (tail[ok].astype(np.int64) << KEY_SHIFT) | t["sched"][ok].astype(np.int64)
            order = np.argsort(keys, kind="stable")
            distance = self.departures["distance"].to_numpy(dtype=np.float64)
            legs = np.column_stack([t["sched"], t["dep"], t["delay"], distance])
            return keys[order], legs[ok][order], _SearchTable.build(keys[order])

        return self._get("tail", build)

    @property
    def weather_index(self) -> tuple[np.ndarray, np.ndarray, _SearchTable | None]:
        """Observations sorted by (origin, hour): keys, weather values, the keys' search table."""

        def build() -> tuple[np.ndarray, np.ndarray, _SearchTable | None]:
            w = self.weather
            origin = codes(self.vocab["airport"], w["origin"])
            hours = to_minutes(w["time_hour_local"])
            ok = (origin >= 0) & np.isfinite(hours)
            keys = (origin[ok].astype(np.int64) << KEY_SHIFT) | hours[ok].astype(np.int64)
            order = np.argsort(keys, kind="stable")
            values = w.loc[ok, list(WEATHER_FEATURES)].to_numpy(dtype=np.float64)[order]
            return keys[order], values, _SearchTable.build(keys[order])

        return self._get("weather", build)


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

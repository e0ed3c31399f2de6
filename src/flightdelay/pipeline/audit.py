"""Stage ``audit``: does any feature tell the label by itself, or see the future?

Two checks on the pipeline's real rows, before a model is trained on them:

* **Per feature** (every column of the feature table but the keys and the target): the ROC AUC of
  its missingness indicator alone against the label (all months), the late share of its missing
  rows, and the ROC AUC of a one-feature model fitted on the training months and scored on the
  evaluation month. The one-feature model scores each value of a categorical feature, or each
  quantile bin of a numeric one (plus a bin for missing), by its smoothed late share in
  training: the most a model of that feature alone can do, up to the binning, in milliseconds
  (a boosted model per feature would take minutes on the 2-core runner for the same answer).
  An AUC below 0.5 separates as well as its mirror image, so each is judged as max(AUC, 1 - AUC)
  against ``audit.max_missing_auc`` / ``audit.max_single_auc``. A rare missing value can tell the
  label perfectly and still move a global AUC by little (2,087 cancelled flights without a tail
  number among 252,484 rows: AUC 0.52), hence the third threshold, on the late share of the
  missing rows (``audit.max_missing_late_share``, judged from ``audit.min_missing_rows`` rows).
* **Time travel**: at ``audit.time_travel_cutoffs`` instants t of the evaluation month (the
  prediction times of evenly spaced flights), the input tables are cut at t (departures that had
  not happened by t lose their departure time and delay, weather observed after t is dropped, the
  flights' own outcome columns are removed), and every flight whose prediction time lies in
  [t - ``audit.time_travel_hours``, t] must get exactly the features the full tables give it.

The stage writes ``${paths.audit}`` (:class:`AuditReport`, read back with
:func:`read_audit`) and exits 1 naming each offending feature and its numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError
from sklearn.metrics import roc_auc_score

from flightdelay.core.context import Context, FeatureError
from flightdelay.core.features import CATEGORICAL_FEATURES, build_features
from flightdelay.core.flights import OUTCOME_COLUMNS, RAW_COLUMNS, scheduled_departure, to_minutes
from flightdelay.core.io import DataFileError, read_batches, read_json, write_json
from flightdelay.core.params import AuditParams, FeaturizeParams, Params
from flightdelay.core.stage import stage_main
from flightdelay.pipeline.featurize import (
    KEY_COLUMNS,
    TARGET,
    flight_ids,
    has_source_tailnum,
    unknown_aircraft,
)

SMOOTHING_ROWS = 20  # pseudo-rows at the base rate added to every bin of a one-feature model
_MINUTE = np.timedelta64(1, "m")


class AuditError(ValueError):
    """The audit cannot run: the feature table or the raw flights are not what it needs."""


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureAudit(_Output):
    feature: str
    kind: Literal["numeric", "categorical"]
    missing_rows: int
    missing_late_share: float | None  # None: never missing
    missing_auc: float | None  # ROC AUC of the missingness indicator; None: never missing
    single_auc: float | None  # one-feature model, evaluation month; None: one class only
    flags: list[str]  # why it fails the audit (empty: it passes)


class TimeTravelChange(_Output):
    feature: str
    flights: int  # flights whose value differs once later rows are removed
    example_flight_id: str
    full: str  # the example's value from the full tables
    cut: str  # its value from the tables cut at its cutoff


class TimeTravel(_Output):
    cutoffs: list[str]  # local instants, ISO
    flights_checked: int
    changed: list[TimeTravelChange]


class LabelCounts(_Output):
    """What the label policy does to the rows of ``scope`` (all months, or the evaluation one)."""

    scope: str
    source_flights: int  # raw rows
    without_tailnum: int  # left out: the source loses the tail number only on cancellation
    without_tailnum_cancelled: int  # of those, flights that never departed
    modelled: int  # rows of the feature table
    positives: int  # modelled rows labelled late
    positives_cancelled: int  # of those, flights that never departed (cancelled: late)
    positives_diverted: int  # of those, flights that departed but have no arrival delay
    aircraft_unknown: int  # modelled rows featurized with the aircraft unknown


class AuditReport(_Output):
    eval_month: str
    thresholds: AuditParams
    label: list[LabelCounts]
    features: list[FeatureAudit]
    time_travel: TimeTravel
    failures: list[str]  # one line per problem, naming the feature and the numbers
    passed: bool


# ---------------------------------------------------------------- per feature (pure)


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else None


def _separation(auc: float | None) -> float:
    return 0.5 if auc is None else max(auc, 1.0 - auc)


def _bin_codes(
    train: pd.Series, values: pd.Series, categorical: bool, bins: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer bin of every training and scored value (0 = missing, -1 = unseen category)."""
    if categorical:
        known = pd.Index(pd.unique(train.dropna().astype(str)))

        def codes(s: pd.Series) -> np.ndarray:
            at = known.get_indexer(s.astype(str).to_numpy(dtype=object)) + 1
            return np.where(s.isna().to_numpy(), 0, np.where(at == 0, -1, at))

        return codes(train), codes(values), len(known) + 1
    x = train.to_numpy(dtype=np.float64)
    finite = x[np.isfinite(x)]
    edges = (
        np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        if len(finite)
        else np.zeros(0)
    )

    def numeric(s: pd.Series) -> np.ndarray:
        v = s.to_numpy(dtype=np.float64)
        return np.where(np.isnan(v), 0, np.searchsorted(edges, v, side="right") + 1)

    return numeric(train), numeric(values), len(edges) + 2


def single_feature_auc(
    train: pd.Series,
    train_y: np.ndarray,
    test: pd.Series,
    test_y: np.ndarray,
    categorical: bool,
    bins: int,
) -> float | None:
    """ROC AUC on ``test`` of the smoothed late share of each value/bin learnt on ``train``."""
    train_codes, test_codes, size = _bin_codes(train, test, categorical, bins)
    base = float(np.mean(train_y))
    seen = train_codes >= 0
    n = np.bincount(train_codes[seen], minlength=size)
    late = np.bincount(train_codes[seen], weights=train_y[seen], minlength=size)
    rate = (late + SMOOTHING_ROWS * base) / (n + SMOOTHING_ROWS)
    scores = np.where(test_codes >= 0, rate[test_codes.clip(0)], base)
    return _auc(test_y, scores)


def audit_features(
    features: pd.DataFrame, eval_month: str, params: AuditParams
) -> list[FeatureAudit]:
    """Every feature column's missingness and one-feature AUCs, with the thresholds it breaks."""
    y = features[TARGET].to_numpy(dtype=np.float64)
    is_eval = (features["month"] == eval_month).to_numpy()
    out = []
    for column in [c for c in features.columns if c not in (*KEY_COLUMNS, TARGET)]:
        values = features[column]
        categorical = column in CATEGORICAL_FEATURES or not pd.api.types.is_numeric_dtype(values)
        missing = values.isna().to_numpy()
        n_missing = int(missing.sum())
        missing_auc = _auc(y, missing.astype(np.float64)) if 0 < n_missing < len(y) else None
        missing_late = float(y[missing].mean()) if n_missing else None
        single = single_feature_auc(
            values[~is_eval], y[~is_eval], values[is_eval], y[is_eval], categorical, params.bins
        )
        flags = []
        if _separation(missing_auc) > params.max_missing_auc:
            flags.append(
                f"its missingness alone has ROC AUC {missing_auc:.3f} "
                f"(limit {params.max_missing_auc:.2f})"
            )
        if (
            missing_late is not None
            and n_missing >= params.min_missing_rows
            and missing_late > params.max_missing_late_share
        ):
            flags.append(
                f"{missing_late:.1%} of its {n_missing:,} missing rows are late "
                f"(limit {params.max_missing_late_share:.0%})"
            )
        if _separation(single) > params.max_single_auc:
            flags.append(
                f"a model of it alone has ROC AUC {single:.3f} on {eval_month} "
                f"(limit {params.max_single_auc:.2f})"
            )
        out.append(
            FeatureAudit(
                feature=column,
                kind="categorical" if categorical else "numeric",
                missing_rows=n_missing,
                missing_late_share=missing_late,
                missing_auc=missing_auc,
                single_auc=single,
                flags=flags,
            )
        )
    return out


# ---------------------------------------------------------------- time travel (pure)


def cut_context(context: Context, at: float) -> Context:
    """The tables as they stood at ``at`` (minutes since 1970, local): departures that had not
    happened lose their departure time and delay; later weather observations are dropped. The
    published schedule, the planes and the airports are known in advance and stay."""
    departures = context.departures.copy()
    later = ~(to_minutes(departures["dep_at"]) < at)  # NaN (never left) counts as later
    departures.loc[later, "dep_at"] = pd.NaT
    departures.loc[later, "dep_delay"] = np.nan
    weather = context.weather[to_minutes(context.weather["time_hour_local"]) <= at]
    return Context.from_tables(
        {
            "departures": departures,
            "weather": weather,
            "planes": context.planes,
            "airports": context.airports,
        }
    )


def _text(value: object) -> str:
    return "missing" if pd.isna(value) else f"{value:g}" if isinstance(value, float) else str(value)


def time_travel(
    flights: pd.DataFrame, context: Context, featurize: FeaturizeParams, params: AuditParams
) -> TimeTravel:
    """Features of real flights from the full tables against the tables cut at their cutoff."""
    if flights.empty:
        return TimeTravel(cutoffs=[], flights_checked=0, changed=[])
    flights = flights.reset_index(drop=True)
    pred = scheduled_departure(flights) - featurize.lead_minutes
    order = np.argsort(pred, kind="stable")
    picks = np.linspace(0, len(order) - 1, params.time_travel_cutoffs + 2)[1:-1]
    cutoffs = np.unique(pred[order[picks.round().astype(int)]])
    ids = flight_ids(flights).to_numpy(dtype=object)
    blind = flights.loc[:, list(RAW_COLUMNS)]  # the flights' own outcomes removed
    changed: dict[str, list[tuple[str, str, str]]] = {}
    checked = 0
    for at in cutoffs:
        rows = np.flatnonzero((pred <= at) & (pred >= at - params.time_travel_hours * 60))
        checked += len(rows)
        full = build_features(flights.iloc[rows], context, featurize)
        cut = build_features(blind.iloc[rows], cut_context(context, float(at)), featurize)
        for column in full.columns:
            a, b = full[column].to_numpy(dtype=object), cut[column].to_numpy(dtype=object)
            same = (pd.isna(a) & pd.isna(b)) | (a == b)
            for i in np.flatnonzero(~same):
                changed.setdefault(column, []).append((ids[rows[i]], _text(a[i]), _text(b[i])))
    return TimeTravel(
        cutoffs=[str(np.datetime64(int(at), "m")) for at in cutoffs],
        flights_checked=checked,
        changed=[
            TimeTravelChange(
                feature=column,
                flights=len(found),
                example_flight_id=found[0][0],
                full=found[0][1],
                cut=found[0][2],
            )
            for column, found in changed.items()
        ],
    )


# ---------------------------------------------------------------- label policy and the whole


def label_counts(
    flights: pd.DataFrame, features: pd.DataFrame, featurize: FeaturizeParams, scope: str
) -> LabelCounts:
    """What the label policy did to these raw rows and the feature table's rows of them."""
    ids = flight_ids(flights)
    modelled = ids.isin(features["flight_id"]).to_numpy()
    late = features.set_index("flight_id")[TARGET]
    positive = modelled & (ids.map(late).fillna(0).to_numpy() == 1)
    never_left = flights["dep_time"].isna().to_numpy()
    no_arrival = flights["arr_delay"].isna().to_numpy()
    without_tail = ~has_source_tailnum(flights)
    return LabelCounts(
        scope=scope,
        source_flights=len(flights),
        without_tailnum=int(without_tail.sum()),
        without_tailnum_cancelled=int((without_tail & never_left).sum()),
        modelled=int(modelled.sum()),
        positives=int(positive.sum()),
        positives_cancelled=int((positive & never_left).sum()),
        positives_diverted=int((positive & no_arrival & ~never_left).sum()),
        aircraft_unknown=int(
            unknown_aircraft(features["flight_id"], featurize.unknown_aircraft_share).sum()
        ),
    )


def audit(
    features: pd.DataFrame,
    flights: pd.DataFrame,
    context: Context,
    featurize: FeaturizeParams,
    params: AuditParams,
) -> AuditReport:
    """The whole audit of a feature table built from ``flights`` with ``context``."""
    missing = [c for c in (*KEY_COLUMNS, TARGET) if c not in features.columns]
    if missing:
        raise AuditError(f"the feature table lacks column(s) {missing} (re-run featurize)")
    absent = [c for c in (*RAW_COLUMNS, *OUTCOME_COLUMNS) if c not in flights.columns]
    if absent:
        raise AuditError(f"the raw flights lack column(s) {absent}")
    months = sorted(features["month"].unique())
    if len(months) < 2:
        raise AuditError(f"need a training month and an evaluation month, found {months}")
    eval_month = months[-1]
    month = (
        flights["year"].astype(int).astype(str)
        + "-"
        + flights["month"].astype(int).astype(str).str.zfill(2)
    ).to_numpy()
    in_eval = month == eval_month
    per_feature = audit_features(features, eval_month, params)
    modelled_eval = flights.loc[
        in_eval & flight_ids(flights).isin(features["flight_id"]).to_numpy()
    ]
    travel = time_travel(modelled_eval, context, featurize, params)
    failures = [f"{f.feature}: {flag}" for f in per_feature for flag in f.flags]
    failures += [
        f"{c.feature}: changes for {c.flights:,} of {travel.flights_checked:,} flights when rows "
        f"after their prediction time are removed (e.g. {c.example_flight_id}: {c.full} with "
        f"them, {c.cut} without)"
        for c in travel.changed
    ]
    eval_features = features[features["month"] == eval_month]
    return AuditReport(
        eval_month=eval_month,
        thresholds=params,
        label=[
            label_counts(flights, features, featurize, "all months"),
            label_counts(flights.loc[in_eval], eval_features, featurize, eval_month),
        ],
        features=per_feature,
        time_travel=travel,
        failures=failures,
        passed=not failures,
    )


# ---------------------------------------------------------------- I/O edge


def write_audit(path: Path, report: AuditReport) -> None:
    write_json(path, report.model_dump(mode="json"))


def read_audit(path: Path) -> AuditReport:
    """The audit.json the stage wrote; DataFileError naming the file if absent or malformed."""
    raw = read_json(path, "leakage audit (run `dvc repro audit`)")
    try:
        return AuditReport.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataFileError(f"{path}: not a leakage audit ({where}: {first['msg']})") from None


def summary(report: AuditReport) -> str:
    """One line: the strongest feature on each measure and the time-travel check."""
    single = max(report.features, key=lambda f: _separation(f.single_auc))
    missing = [f for f in report.features if f.missing_auc is not None]
    worst_missing = max(missing, key=lambda f: _separation(f.missing_auc)) if missing else None
    t = report.time_travel
    return (
        f"{len(report.features)} features; strongest alone: {single.feature} (ROC AUC "
        + ("n/a" if single.single_auc is None else f"{single.single_auc:.3f}")
        + ")"
        + (
            f"; strongest missingness: {worst_missing.feature} (ROC AUC "
            f"{worst_missing.missing_auc:.3f}, {worst_missing.missing_late_share:.1%} late)"
            if worst_missing is not None and worst_missing.missing_late_share is not None
            else ""
        )
        + f"; time travel: {t.flights_checked:,} flights at {len(t.cutoffs)} cutoffs, "
        f"{len(t.changed)} feature(s) changed"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.model_io import ModelBundleError

    errors = (DataFileError, FeatureError, AuditError, ModelBundleError)
    return stage_main("audit", __doc__, argv, run, errors)


def run(params: Params, args: argparse.Namespace) -> int:
    from flightdelay.core.model_io import read_context

    started = time.perf_counter()
    paths = params.paths
    if not paths.features.is_file():
        raise DataFileError(f"{paths.features}: feature table not found (run featurize)")
    features = pd.read_parquet(paths.features)
    report = audit(
        features,
        read_batches(paths.flights),
        read_context(paths.context),
        params.featurize,
        params.audit,
    )
    out = paths.audit
    write_audit(out, report)
    if not report.passed:
        print(
            f"error: the leakage audit failed ({out}):\n  " + "\n  ".join(report.failures),
            file=sys.stderr,
        )
        return 1
    print(f"audit: {summary(report)} -> {out} ({time.perf_counter() - started:.1f}s)")
    return 0

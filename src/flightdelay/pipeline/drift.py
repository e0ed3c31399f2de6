"""Drift stage: how far the newest batch (current) has moved from the training data (reference).

Per-feature drift uses the default rules of Evidently's ``DataDriftPreset`` (0.7), mirrored from
its source (:mod:`flightdelay.pipeline.stattests`, decided per feature and for the dataset in
:mod:`flightdelay.pipeline.feature_drift`) so the numbers are comparable with any team that uses
it (``benchmarks/drift.py`` checks agreement column by column):

* reference above 1,000 non-null rows: normalised Wasserstein distance (W1 / std of the
  reference, std floored at 0.001) for numeric columns with more than 5 distinct values,
  Jensen-Shannon distance (natural log) for categorical and low-cardinality numeric ones; drift
  when the distance is >= 0.1;
* smaller references: two-sample Kolmogorov-Smirnov for numeric columns with more than 5
  values, chi-square for more than 2 values, a two-proportion Z-test for 2 or fewer; drift when
  p < 0.05 (KS: p <= 0.05);
* nulls and infinities are dropped before testing; "distinct values" counts both samples.

PSI is reported beside every column (Evidently's binning). Columns whose distribution differs
between months by construction (calendar columns) are excluded and listed as such.

Dataset drift: share of drifted features >= ``drift.drift_share``. Prediction drift compares
score distributions: the current month's against the out-of-sample scores of the backtest months
before it (each scored by a model trained on the months before that month), or, when no backtest
month is earlier, against the model's in-sample scores of its training rows (more spread out, so
drift is more readily flagged; drift.json says which). Label drift compares the late rate,
performance drift the metric of the newest month against the backtest months.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from flightdelay.core.drift_summary import DRIFT_JSON, TABLE_JSON, DriftSummary
from flightdelay.core.params import DriftParams
from flightdelay.pipeline.drift_plots import distribution, plot_data, write_figures
from flightdelay.pipeline.feature_drift import (
    ColumnDrift,
    DatasetDrift,
    column_drift,
    dataset_drift,
)
from flightdelay.pipeline.stattests import DriftError, Kind, declared_kinds

# ---------------------------------------------------------------- the stage

LABEL = "late"
SCORE = "score"
MONTH = "month"
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}


def performance_drift(
    backtest: Sequence[Mapping[str, Any]], current_month: str, metric: str, max_drop: float
) -> dict[str, Any]:
    """The newest month's metric against the earlier backtest months (each scored by a model
    trained on the months before it). Drift when it is worse than the worst of them by more than
    ``max_drop``; a defined "not available" result when the backtest lacks the months."""
    higher = HIGHER_IS_BETTER[metric]
    by_month = {str(m["month"]): m for m in backtest if metric in m}
    base: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": higher,
        "max_drop": max_drop,
        "by_month": {month: float(m[metric]) for month, m in sorted(by_month.items())},
    }
    earlier = [float(m[metric]) for month, m in by_month.items() if month < current_month]
    if current_month not in by_month or not earlier:
        missing = current_month if current_month not in by_month else "any earlier month"
        return {
            **base,
            "available": False,
            "drifted": False,
            "message": f"backtest has no {metric} for {missing}: performance drift not "
            "assessed (evaluate.backtest_months >= 2 gives it one)",
        }
    current = float(by_month[current_month][metric])
    worst = min(earlier) if higher else max(earlier)
    drop = (worst - current) if higher else (current - worst)
    return {
        **base,
        "available": True,
        "current": current,
        "backtest_mean": float(np.mean(earlier)),
        "backtest_worst": worst,
        "drop_below_worst": drop,
        "drifted": bool(drop > max_drop),
        "message": "",
    }


def late_rate_by_month(
    features: pd.DataFrame, reference_months: Sequence[str], current_month: str
) -> pd.DataFrame:
    """Flights and late share per month, each month marked reference/current/other."""
    grouped = features.groupby(MONTH, sort=True)[LABEL].agg(["size", "mean"]).reset_index()
    grouped.columns = pd.Index([MONTH, "flights", "late_rate"])
    grouped["role"] = [
        "current" if m == current_month else "reference" if m in reference_months else "other"
        for m in grouped[MONTH]
    ]
    return grouped


ScoreSource = Literal["backtest", "in_sample"]


@dataclass(frozen=True)
class ScoreReference:
    """The scores prediction drift compares the current month's with: out-of-sample backtest
    scores of earlier months, or the model's in-sample scores of its training rows."""

    source: ScoreSource
    months: tuple[str, ...]
    n: int
    why_in_sample: str = ""  # set when backtest scores were offered but none was earlier

    def describe(self) -> str:
        span = ", ".join(self.months)
        if self.source == "backtest":
            return (
                f"out-of-sample backtest scores of {span} (each month scored by a model trained "
                "on the months before it)"
            )
        text = "the model's scores on its training rows (in-sample)"
        return f"{text}: {self.why_in_sample}" if self.why_in_sample else text

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.describe(),
            "reference_source": self.source,
            "reference_score_months": list(self.months),
            "n_reference_scores": self.n,
        }


@dataclass(frozen=True)
class DriftReport:
    """Everything the drift stage reports; :meth:`summary` is drift.json."""

    reference_months: tuple[str, ...]
    current_month: str
    features: DatasetDrift
    label: ColumnDrift
    label_rates: tuple[float, float]  # late rate of reference, current
    prediction: ColumnDrift | None
    score_means: tuple[float, float] | None
    performance: Mapping[str, Any]
    late_rates: pd.DataFrame = field(repr=False)
    distributions: Mapping[str, pd.DataFrame] = field(repr=False)  # most-drifted features
    score_distribution: pd.DataFrame | None = field(repr=False, default=None)
    score_reference: ScoreReference | None = None  # what the current scores were compared with

    def summary(self) -> DriftSummary:
        """drift.json, typed: the one shape the stage writes and its readers read."""
        return DriftSummary.parse(self.to_json(), DRIFT_JSON)

    def to_json(self) -> dict[str, Any]:
        """The payload of drift.json (validated and written through :meth:`summary`)."""

        def drift_of(c: ColumnDrift | None) -> dict[str, Any]:
            if c is None:
                return {"available": False, "drifted": False}
            return {
                "available": c.status == "ok",
                "drifted": c.drifted,
                "method": c.method,
                "score": c.score,
                "threshold": c.threshold,
                "psi": c.psi,
                "message": c.message,
            }

        prediction = drift_of(self.prediction)
        if self.score_means is not None:
            prediction |= {
                "reference_mean_score": self.score_means[0],
                "current_mean_score": self.score_means[1],
            }
        if self.score_reference is not None:
            prediction |= self.score_reference.to_json()
        return {
            "current_month": self.current_month,
            "reference_months": list(self.reference_months),
            "dataset": self.features.summary(),
            "label": drift_of(self.label)
            | {
                "reference_late_rate": self.label_rates[0],
                "current_late_rate": self.label_rates[1],
            },
            "prediction": prediction,
            "performance": dict(self.performance),
            "any_drift": bool(
                self.features.drifted
                or self.label.drifted
                or (self.prediction is not None and self.prediction.drifted)
                or self.performance.get("drifted", False)
            ),
        }

    def markdown_table(self) -> dict[str, Any]:
        """The per-feature table as header + formatted rows, ready to render as markdown."""
        header = [
            "feature",
            "kind",
            "test",
            "score",
            "threshold",
            "drift",
            "PSI",
            "null % ref/cur",
            "note",
        ]
        rows = []
        for _, r in self.features.table().iterrows():
            score = "" if pd.isna(r["score"]) else f"{r['score']:.4g}"
            psi = "" if pd.isna(r["psi"]) else f"{r['psi']:.3g}"
            nulls = "/".join(
                "" if pd.isna(v) else f"{100 * v:.1f}"
                for v in (r["null_share_reference"], r["null_share_current"])
            )
            rows.append(
                [
                    r["column"],
                    r["kind"],
                    r["method"] or r["status"],
                    score,
                    "" if pd.isna(r["threshold"]) else f"{r['threshold']:g}",
                    "yes" if r["drifted"] else "no",
                    psi,
                    nulls,
                    r["message"],
                ]
            )
        notes = [f"{column}: excluded ({why})" for column, why in self.features.excluded.items()]
        return {"header": header, "rows": rows, "notes": notes}


def drift(
    features: pd.DataFrame,
    predictions: pd.DataFrame,
    backtest: Sequence[Mapping[str, Any]],
    reference_months: Sequence[str],
    current_month: str,
    kinds: Mapping[str, Kind],
    params: DriftParams,
    score_reference: Callable[[pd.DataFrame], np.ndarray] | None = None,
    backtest_scores: pd.DataFrame | None = None,
) -> DriftReport:
    """The drift stage's core: the current month against the training months.

    ``predictions`` holds the current month's scores (column ``score``). Prediction drift compares
    them with ``backtest_scores`` (columns ``month``, ``score``: out-of-sample scores) of the
    months before the current one; without such rows, with the reference rows scored by
    ``score_reference`` (rows -> scores, in-sample); it is skipped when neither is given.
    """
    for column in (MONTH, LABEL):
        if column not in features.columns:
            raise DriftError(f"the feature table lacks the column {column!r}")
    present = set(features[MONTH].unique())
    missing = sorted(set(reference_months) - present)
    if missing:
        raise DriftError(f"the feature table has no rows for the reference month(s) {missing}")
    if not reference_months:
        raise DriftError("no reference months: the model was trained on no data")
    reference = features[features[MONTH].isin(list(reference_months))]
    current = features[features[MONTH] == current_month]
    if current.empty:
        raise DriftError(f"the current batch {current_month} has no rows: nothing to compare")
    result = dataset_drift(reference, current, kinds, params)

    label = column_drift(reference[LABEL], current[LABEL], LABEL, "categorical")
    rates = (float(reference[LABEL].mean()), float(current[LABEL].mean()))

    prediction = score_means = score_table = None
    score_ref: ScoreReference | None = None
    earlier = _earlier_scores(backtest_scores, current_month)
    if (earlier is not None and not earlier.empty) or score_reference is not None:
        if SCORE not in predictions.columns:
            raise DriftError(f"the predictions lack the column {SCORE!r}")
        if MONTH in predictions.columns and set(predictions[MONTH].unique()) != {current_month}:
            raise DriftError(
                f"the predictions are for {sorted(predictions[MONTH].unique())}, not the "
                f"current batch {current_month}: re-run `dvc repro evaluate`"
            )
        if earlier is not None and not earlier.empty:
            ref_scores = earlier[SCORE].astype("float64").reset_index(drop=True)
            score_ref = ScoreReference(
                "backtest", tuple(sorted(map(str, earlier[MONTH].unique()))), len(ref_scores)
            )
        else:
            assert score_reference is not None  # no earlier backtest scores: see the `if` above
            ref_scores = pd.Series(np.asarray(score_reference(reference), dtype="float64"))
            why = (
                f"no out-of-sample backtest month before {current_month} "
                "(evaluate.backtest_months >= 2 gives one)"
                if earlier is not None
                else ""
            )
            score_ref = ScoreReference("in_sample", tuple(reference_months), len(ref_scores), why)
        cur_scores = predictions[SCORE].astype("float64").reset_index(drop=True)
        prediction = column_drift(ref_scores, cur_scores, SCORE, "numeric")
        score_means = (float(ref_scores.mean()), float(cur_scores.mean()))
        score_table = distribution(ref_scores, cur_scores, "numeric")

    top = [c for c in result.table()["column"] if c not in result.excluded]
    top = [c for c in top if c in reference.columns and c in current.columns][: params.top_features]
    distributions = {c: distribution(reference[c], current[c], kinds[c]) for c in top}
    return DriftReport(
        reference_months=tuple(reference_months),
        current_month=current_month,
        features=result,
        label=label,
        label_rates=rates,
        prediction=prediction,
        score_means=score_means,
        performance=performance_drift(
            backtest, current_month, params.performance_metric, params.max_performance_drop
        ),
        late_rates=late_rate_by_month(features, reference_months, current_month),
        distributions=distributions,
        score_distribution=score_table,
        score_reference=score_ref,
    )


def _earlier_scores(
    backtest_scores: pd.DataFrame | None, current_month: str
) -> pd.DataFrame | None:
    """The rows of ``backtest_scores`` for months before ``current_month`` (None if not given)."""
    if backtest_scores is None:
        return None
    missing = [c for c in (MONTH, SCORE) if c not in backtest_scores.columns]
    if missing:
        raise DriftError(f"the backtest predictions lack the column(s) {missing}")
    return backtest_scores[backtest_scores[MONTH].astype(str) < current_month]


# ---------------------------------------------------------------- I/O edge

TABLE_CSV = "features.csv"  # one row per feature
PLOT_DATA = "plots"  # CSV files for `dvc plots`
PNG = "png"  # figures for the pull-request comment


def write_outputs(report: DriftReport, directory: Path) -> None:
    from flightdelay.core.io import write_json

    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / DRIFT_JSON, report.summary().to_json())
    report.features.table().to_csv(directory / TABLE_CSV, index=False)
    write_json(directory / TABLE_JSON, report.markdown_table())
    (directory / PLOT_DATA).mkdir(exist_ok=True)
    for name, frame in plot_data(report).items():
        frame.to_csv(directory / PLOT_DATA / f"{name}.csv", index=False)
    write_figures(report, directory / PNG)


def read_parquet(path: Path, what: str) -> pd.DataFrame:
    from flightdelay.core.io import DataFileError

    if not path.is_file():
        raise DataFileError(f"{path}: {what} not found")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{path}: {what} is not a readable parquet file: {exc}") from None


def check_backtest_scores(
    scores: pd.DataFrame, backtest: Sequence[Mapping[str, Any]], current_month: str
) -> None:
    """The backtest predictions must hold exactly backtest.json's months before the current one
    (files from different runs of evaluate would compare unrelated scores)."""
    if MONTH not in scores.columns:
        raise DriftError(f"the backtest predictions lack the column {MONTH!r}")
    have = sorted(map(str, scores[MONTH].unique()))
    expected = sorted(str(m["month"]) for m in backtest if str(m.get("month")) < current_month)
    if have != expected:
        raise DriftError(
            f"the backtest predictions are for {have} but backtest.json has {expected} before "
            f"{current_month}: re-run `dvc repro evaluate`"
        )


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.io import DataFileError
    from flightdelay.core.stage import stage_main

    return stage_main("drift", __doc__, argv, run, (DataFileError, DriftError))


def run(params: Any, args: argparse.Namespace) -> int:
    from flightdelay.core.io import read_json
    from flightdelay.core.model_io import load_model_bundle
    from flightdelay.core.outputs import Backtest
    from flightdelay.pipeline.train import score

    paths = params.paths

    bundle = load_model_bundle(paths.model)
    features = read_parquet(paths.features, "feature table (run `dvc repro featurize`)")
    predictions = read_parquet(paths.predictions, "predictions (run `dvc repro evaluate`)")
    backtest_scores = read_parquet(
        paths.backtest_predictions, "backtest predictions (run `dvc repro evaluate`)"
    )
    raw = read_json(paths.backtest, "backtest metrics (run `dvc repro evaluate`)")
    backtest = [m.to_json() for m in Backtest.parse(raw, paths.backtest).months]
    months = sorted(features[MONTH].unique()) if MONTH in features.columns else []
    current_month = bundle.info.eval_month
    if months and current_month != months[-1]:
        raise DriftError(
            f"the model was evaluated on {current_month} but the newest batch is "
            f"{months[-1]}: re-run `dvc repro train evaluate`"
        )
    check_backtest_scores(backtest_scores, backtest, current_month)
    report = drift(
        features,
        predictions,
        backtest,
        reference_months=list(bundle.info.train_months),
        current_month=current_month,
        kinds=declared_kinds(),
        params=params.drift,
        score_reference=lambda rows: score(bundle.pipeline, rows),
        backtest_scores=backtest_scores,
    )
    write_outputs(report, paths.drift)
    summary = report.summary()
    d, perf = summary.dataset, summary.performance
    print(
        f"drift {report.current_month} vs {report.reference_months[0]}.."
        f"{report.reference_months[-1]}: {d.n_drifted}/{d.n_features} features drifted "
        f"(dataset drift: {'yes' if d.drifted else 'no'}), late rate "
        f"{report.label_rates[0]:.3f} -> {report.label_rates[1]:.3f}"
        + (
            f", mean score {report.score_means[0]:.3f} -> {report.score_means[1]:.3f}"
            f" ({report.score_reference.source} reference)"
            if report.score_means and report.score_reference
            else ""
        )
        + (
            f", {perf.metric} {perf.current:.4f} (worst backtest {perf.backtest_worst:.4f})"
            if perf.available
            else ""
        )
        + f" -> {paths.drift}"
    )
    return 0

"""The promotion's own evidence: the candidate and the champion scored by this code, on the
evaluation month built from the DVC-tracked raw data.

Whoever can push to a branch and to the DVC remote can write any pipeline output and record it
with ``dvc commit -f``: metrics, slices, predictions, features, context, the validation summary.
The promotion job therefore reads none of them to decide. It takes only what it can verify:

- the raw batches under ``data/``, checked file by file against ``data.dvc`` (git, reviewed);
- the model directories, fetched by the hash ``dvc.lock`` records and re-hashed
  (:func:`flightdelay.loop.promote.approve` does that before calling :func:`evidence`).

From the raw batches it re-runs the data validation, builds the context tables and the newest
month's rows (the evaluation month, as ``train`` holds it out), builds each model's features
with the featurize params recorded in its own model.json, scores both models and computes the
metric, the slices and the paired comparison the gate judges (:func:`flightdelay.loop.gate.decide`).

Pure core: :func:`month_of`, :func:`challenger_of` and :func:`compare_scores` take frames and
arrays. I/O edge: :func:`read_month`, :func:`validation_summary` and :func:`evidence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.context import Context, FeatureError, build_context
from flightdelay.core.features import build_features, target
from flightdelay.core.outputs import EvaluateMetrics, Slices, ValidationSummary
from flightdelay.core.params import BootstrapParams, FeaturizeParams, GateParams
from flightdelay.loop.compare import CompareError, Comparison, compare
from flightdelay.loop.gate import Challenger


class RescoreError(CompareError):
    """The evidence cannot be built (data does not match data.dvc, a model cannot score it)."""


@dataclass(frozen=True)
class Month:
    """The evaluation month as the raw data holds it: its flights with a target, and the context."""

    name: str  # "2013-10": the newest month, the one train holds out
    flights: pd.DataFrame  # its raw flights that have a target
    y: np.ndarray  # 0/1
    context: Context
    majority: int  # the earlier months' majority class (0 on time, 1 late), as evaluate takes it


@dataclass(frozen=True)
class Candidate:
    """A model to score: its directory (already verified), how the report names it, its commit."""

    model_dir: Path
    label: str
    commit: str


# ---------------------------------------------------------------- pure core


def months_of(flights: pd.DataFrame) -> pd.Series:
    """``YYYY-MM`` of each raw flight, as featurize writes it."""
    return (
        flights["year"].astype(int).astype(str)
        + "-"
        + flights["month"].astype(int).astype(str).str.zfill(2)
    )


def month_of(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
    airports: pd.DataFrame,
    target_params: FeaturizeParams,
) -> Month:
    """The newest month of the raw flights with its target, and the context of all the data."""
    months = months_of(flights)
    distinct = sorted(months.unique())
    if len(distinct) < 2:
        raise RescoreError(f"need at least two months of data to hold one out, found {distinct}")
    newest = distinct[-1]
    rows = flights.loc[(months == newest).to_numpy()]
    y = target(rows, target_params)
    keep = y.notna().to_numpy()
    earlier = target(flights.loc[(months != newest).to_numpy()], target_params).dropna()
    return Month(
        name=newest,
        flights=rows.loc[keep],
        y=y.loc[keep].astype(int).to_numpy(),
        context=build_context(flights, weather, planes, airports),
        majority=int(float(earlier.astype(float).mean()) >= 0.5),
    )


def scores_of(bundle: Any, month: Month) -> np.ndarray:
    """The model's scores of the month, on features this code builds with the model's own
    featurize params (as serving builds them) against the context of the raw data."""
    try:
        features = build_features(month.flights, month.context, bundle.featurize_params)
    except FeatureError as exc:
        raise RescoreError(f"cannot build the model's features: {exc}") from None
    needed = bundle.info.columns
    lost = [c for c in needed if c not in features.columns]
    if lost:
        raise RescoreError(f"the model needs feature(s) {lost} that this code does not build")
    return np.asarray(bundle.pipeline.predict_proba(features.loc[:, needed])[:, 1], np.float64)


def challenger_of(
    month: Month,
    scores: np.ndarray,
    threshold: float,
    rule: GateParams,
    validation: ValidationSummary | None,
) -> Challenger:
    """What the gate judges of the candidate, computed from its scores: evaluate.json and
    slices.json as the evaluate stage computes them (every slice column; the rule judges its
    own), read through their types."""
    from flightdelay.pipeline.evaluate import classification_metrics, slice_metrics

    metrics = EvaluateMetrics.parse(
        {
            "eval_month": month.name,
            "threshold": threshold,
            **classification_metrics(month.y, scores, threshold),
            "baseline_accuracy": float(np.mean(month.y == month.majority)),
        },
        f"the re-scored metrics of {month.name}",
    )
    frame = _frame(month, scores, Slices.COLUMNS)
    slices = Slices.parse(
        {
            column: slice_metrics(frame, column, threshold, rule.slice_min_rows)
            for column in Slices.COLUMNS
        },
        f"the re-scored slices of {month.name}",
    )
    return Challenger(metrics=metrics, slices=slices, validation=validation)


def compare_scores(
    month: Month,
    scores: np.ndarray,
    baseline_scores: np.ndarray,
    thresholds: tuple[float, float],
    rule: GateParams,
    bootstrap: BootstrapParams,
    baseline: str,
    commit: str,
    baseline_sha256: str | None,
) -> Comparison:
    """The paired comparison of both models' scores of the month, by the rule."""
    frame = _frame(month, scores, rule.slice_columns)
    frame["baseline_score"] = baseline_scores
    return compare(
        frame,
        thresholds,
        baseline=baseline,
        commit=commit,
        samples=bootstrap.samples,
        confidence=bootstrap.confidence,
        seed=bootstrap.seed,
        slice_columns=rule.slice_columns,
        slice_min_rows=rule.slice_min_rows,
        slice_metric=rule.metric,
        notes=[f"both models re-scored by the promotion job on {month.name}"],
        baseline_sha256=baseline_sha256,
    )


def _frame(month: Month, scores: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"y_true": month.y, "score": scores})
    for column in columns:
        frame[column] = month.flights[column].astype(str).to_numpy()
    return frame


# ---------------------------------------------------------------- I/O edge


def verified_data(params: Any, dvc_file: Path = Path("data.dvc")) -> None:
    """Raise unless data/ holds exactly the files data.dvc records (what git says the data is)."""
    from flightdelay.core.data import DataError, manifest, mismatches, read_dvc_file

    try:
        problems = mismatches(params.paths.data, manifest(read_dvc_file(dvc_file), dvc_file))
    except DataError as exc:
        raise RescoreError(str(exc)) from None
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        listed = "; ".join(problems[:3]) + more
        raise RescoreError(
            f"data/ is not what data.dvc records ({listed}): run `make pull` (or `make data`)"
        )


def read_month(params: Any, target_params: FeaturizeParams) -> Month:
    """The evaluation month from the raw batches (verified against data.dvc first)."""
    from flightdelay.core.io import DataFileError, read_batches, read_csv

    verified_data(params)
    paths = params.paths
    try:
        return month_of(
            read_batches(paths.flights),
            read_batches(paths.weather),
            read_csv(paths.planes),
            read_csv(paths.airports),
            target_params,
        )
    except (DataFileError, FeatureError) as exc:
        raise RescoreError(str(exc)) from None


def validation_summary(params: Any) -> ValidationSummary:
    """The data validation re-run on the raw batches (the summary ``flightdelay validate``
    writes), so a forged ``outputs/validation`` cannot pass bad data."""
    import os

    from flightdelay.core.io import DataFileError
    from flightdelay.pipeline.validate import TABLES, read_table, suite_parameters, validate
    from flightdelay.pipeline.validate_gx import SuiteError, load_suite

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    paths = params.paths
    try:
        suites = {t: load_suite(paths.expectations / f"{t}.json") for t in TABLES}
        tables = {
            "flights": read_table(paths.flights, "flights"),
            "weather": read_table(paths.weather, "weather"),
        }
        outcome = validate(tables, suites, suite_parameters(params), params.validate_)
    except (SuiteError, DataFileError) as exc:
        raise RescoreError(f"the data validation cannot run: {exc}") from None
    return ValidationSummary.parse(outcome.summary(), "the re-run data validation")


def evidence(
    candidate: Candidate, champion: Candidate | None, params: Any
) -> tuple[Challenger, Comparison | None]:
    """The candidate as the gate judges it and its comparison with the champion, both scored
    here. ``params`` is the candidate's with the base's rule applied (:meth:`gate.Rule.apply`);
    both model directories must already be verified against dvc.lock."""
    from flightdelay.core.io import DataFileError
    from flightdelay.core.model_io import load_model_bundle

    try:
        bundle = load_model_bundle(candidate.model_dir)
        other = None if champion is None else load_model_bundle(champion.model_dir)
    except DataFileError as exc:
        raise RescoreError(str(exc)) from None
    validation = validation_summary(params)
    if not validation.success:
        return Challenger(None, None, validation), None
    month = read_month(params, bundle.featurize_params)
    scores = scores_of(bundle, month)
    challenger = challenger_of(month, scores, bundle.threshold, params.gate, validation)
    if champion is None or other is None:
        return challenger, None
    comparison = compare_scores(
        month,
        scores,
        scores_of(other, month),
        (bundle.threshold, other.threshold),
        params.gate,
        params.bootstrap,
        champion.label,
        champion.commit,
        other.info.sha256,
    )
    return challenger, comparison

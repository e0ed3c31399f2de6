"""Stage ``evaluate``: score the held-out newest month, backtest, slice, explain, plot.

Writes under ``${paths.metrics}``: evaluate.json (headline metrics), backtest.json (for each of the
last ``backtest_months`` months: a model trained on all earlier months, tested on that month),
slices.json (per carrier and per origin), importance.json (permutation importance, ROC AUC drop);
under ``${paths.plots}``: roc.csv, pr.csv, calibration.csv, confusion.csv for ``dvc plots`` and a
PNG of each for the pull-request comment; ``${paths.predictions}`` (one row per evaluation
flight: month, flight_id, y_true, score, predicted, then the feature columns); and
``${paths.backtest_predictions}`` (one row per flight of each backtest month before the evaluation
month: month, flight_id, y_true, score, scored out of sample by the model trained on the months
before it; the drift stage's prediction-drift reference).

Threshold metrics (accuracy, precision, recall, F1) use the threshold chosen by ``train`` on the
training months only (see :mod:`flightdelay.pipeline.train`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline

from flightdelay.core.features import FEATURE_COLUMNS
from flightdelay.core.io import DataFileError
from flightdelay.core.outputs import Backtest, EvaluateMetrics, Importance, Slices
from flightdelay.core.params import EvaluateParams, Params, TrainParams
from flightdelay.core.stage import stage_main
from flightdelay.pipeline.featurize import TARGET
from flightdelay.pipeline.train import (
    TrainError,
    check_features,
    fit,
    read_features,
    score,
    split_months,
)

SLICE_COLUMNS: tuple[str, ...] = ("carrier", "origin")
CURVE_POINTS = 200  # ROC/PR curves are thinned to about this many points for `dvc plots`


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    backtest: list[dict[str, Any]]
    slices: dict[str, list[dict[str, Any]]]
    importance: list[dict[str, Any]]
    curves: dict[str, pd.DataFrame]
    predictions: pd.DataFrame
    backtest_predictions: pd.DataFrame  # out-of-sample scores of the earlier backtest months


def classification_metrics(
    y: np.ndarray, scores: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Ranking and probability metrics; threshold metrics too when a threshold is given."""
    out: dict[str, float] = {"n": float(len(y)), "late_share": float(np.mean(y))}
    if len(np.unique(y)) == 2:
        out |= {
            "roc_auc": float(roc_auc_score(y, scores)),
            "pr_auc": float(average_precision_score(y, scores)),
            "log_loss": float(log_loss(y, scores, labels=[0, 1])),
            "brier": float(brier_score_loss(y, scores)),
        }
    if threshold is not None:
        predicted = (scores >= threshold).astype(int)
        out |= {
            "accuracy": float(accuracy_score(y, predicted)),
            "precision": float(precision_score(y, predicted, zero_division=0)),
            "recall": float(recall_score(y, predicted, zero_division=0)),
            "f1": float(f1_score(y, predicted, zero_division=0)),
        }
    return out


BACKTEST_PREDICTION_COLUMNS: tuple[str, ...] = ("month", "flight_id", "y_true", "score")


def backtest(
    features: pd.DataFrame,
    months: Sequence[str],
    params: TrainParams,
    known: dict[str, Pipeline] | None = None,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """For each month: fit on every earlier month, score that month (``known`` reuses fits).

    Returns the metrics per month and the scores themselves (``BACKTEST_PREDICTION_COLUMNS``,
    one row per flight of the months tested), all out of sample.
    """
    rows, scored = [], []
    for month in months:
        history = features[features["month"] < month]
        if history.empty:
            continue
        pipeline = (known or {}).get(month) or fit(history, params)
        test = features[features["month"] == month]
        y = test[TARGET].to_numpy()
        scores = score(pipeline, test)
        rows.append(
            {
                "month": month,
                "train_months": sorted(history["month"].unique()),
                **classification_metrics(y, scores),
            }
        )
        scored.append(
            pd.DataFrame(
                {
                    "month": test["month"].to_numpy(),
                    "flight_id": test["flight_id"].to_numpy(),
                    "y_true": y.astype(np.int8),
                    "score": scores,
                }
            )
        )
    empty = pd.DataFrame(
        {
            "month": pd.Series(dtype=features["month"].dtype),
            "flight_id": pd.Series(dtype=features["flight_id"].dtype),
            "y_true": pd.Series(dtype=np.int8),
            "score": pd.Series(dtype="float64"),
        }
    )
    return rows, pd.concat(scored, ignore_index=True) if scored else empty


def slice_metrics(
    frame: pd.DataFrame, column: str, threshold: float, min_rows: int
) -> list[dict[str, Any]]:
    """Metrics per value of ``column`` (largest slices first); small slices get n only."""
    out = []
    for value, group in frame.groupby(column, sort=False):
        y, s = group["y_true"].to_numpy(), group["score"].to_numpy()
        entry: dict[str, Any] = {column: value, "n": len(group)}
        if len(group) >= min_rows:
            entry |= classification_metrics(y, s, threshold)
        out.append(entry)
    return sorted(out, key=lambda e: (-e["n"], str(e[column])))


def thin(curve: pd.DataFrame, points: int = CURVE_POINTS) -> pd.DataFrame:
    if len(curve) <= points:
        return curve.reset_index(drop=True)
    at = np.unique(np.linspace(0, len(curve) - 1, points).round().astype(int))
    return curve.iloc[at].reset_index(drop=True)


def curves(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, pd.DataFrame]:
    fpr, tpr, roc_t = roc_curve(y, scores)
    precision, recall, pr_t = precision_recall_curve(y, scores)
    observed, predicted = calibration_curve(y, scores, n_bins=10, strategy="quantile")
    return {
        "roc": thin(pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_t, 1.0)})),
        "pr": thin(
            pd.DataFrame({"recall": recall[:-1], "precision": precision[:-1], "threshold": pr_t})
        ),
        "calibration": pd.DataFrame({"mean_predicted": predicted, "fraction_late": observed}),
        "confusion": pd.DataFrame(
            {
                "actual": np.where(y == 1, "late", "on_time"),
                "predicted": np.where(scores >= threshold, "late", "on_time"),
            }
        ),
    }


def importance(
    pipeline: Pipeline, test: pd.DataFrame, params: EvaluateParams, seed: int
) -> list[dict[str, Any]]:
    """Permutation importance (mean drop of ROC AUC) on a seeded sample of evaluation rows."""
    sample = test.sample(n=min(params.importance_sample, len(test)), random_state=seed)
    result = permutation_importance(
        pipeline,
        sample.loc[:, list(FEATURE_COLUMNS)],
        sample[TARGET].to_numpy(),
        scoring="roc_auc",
        n_repeats=params.importance_repeats,
        random_state=seed,
        n_jobs=1,
    )
    rows = [
        {"feature": name, "importance": float(m), "std": float(s)}
        for name, m, s in zip(
            FEATURE_COLUMNS, result.importances_mean, result.importances_std, strict=True
        )
    ]
    return sorted(rows, key=lambda r: -r["importance"])


def evaluate(
    features: pd.DataFrame,
    pipeline: Pipeline,
    threshold: float,
    train_params: TrainParams,
    params: EvaluateParams,
) -> Evaluation:
    """Everything evaluate reports, for a pipeline trained on all months but the newest."""
    check_features(features)
    train_months, eval_month = split_months(features)
    test = features[features["month"] == eval_month]
    y = test[TARGET].to_numpy()
    scores = score(pipeline, test)
    train_late = features.loc[features["month"].isin(train_months), TARGET].mean()
    majority = int(train_late >= 0.5)
    metrics = {
        "eval_month": eval_month,
        "threshold": threshold,
        **classification_metrics(y, scores, threshold),
        "baseline_accuracy": float(np.mean(y == majority)),
    }
    predictions = pd.concat(
        [
            test[["month", "flight_id"]].reset_index(drop=True),
            pd.DataFrame(
                {
                    "y_true": y.astype(np.int8),
                    "score": scores,
                    "predicted": (scores >= threshold).astype(np.int8),
                }
            ),
            test.loc[:, list(FEATURE_COLUMNS)].reset_index(drop=True),
        ],
        axis=1,
    )
    months = (
        sorted(features["month"].unique())[-params.backtest_months :]
        if params.backtest_months
        else []
    )
    backtest_rows, backtest_scores = backtest(
        features, months, train_params, known={eval_month: pipeline}
    )
    return Evaluation(
        metrics=metrics,
        backtest=backtest_rows,
        slices={
            c: slice_metrics(predictions, c, threshold, params.min_slice_rows)
            for c in SLICE_COLUMNS
        },
        importance=importance(pipeline, test, params, train_params.seed),
        curves=curves(y, scores, threshold),
        predictions=predictions,
        # The evaluation month's scores are ``predictions``: only the earlier months, the
        # out-of-sample reference of prediction drift.
        backtest_predictions=backtest_scores[backtest_scores["month"] < eval_month].reset_index(
            drop=True
        ),
    )


# ---------------------------------------------------------------- I/O edge


def write_plots(evaluation: Evaluation, directory: Path) -> None:
    """CSV data for `dvc plots` and a PNG of each plot (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in evaluation.curves.items():
        frame.to_csv(directory / f"{name}.csv", index=False)
    c, m = evaluation.curves, evaluation.metrics
    figures = {
        "roc": (
            c["roc"]["fpr"],
            c["roc"]["tpr"],
            "false positive rate",
            "true positive rate",
            f"ROC, AUC {m.get('roc_auc', float('nan')):.3f}",
        ),
        "pr": (
            c["pr"]["recall"],
            c["pr"]["precision"],
            "recall",
            "precision",
            f"precision-recall, AP {m.get('pr_auc', float('nan')):.3f}",
        ),
        "calibration": (
            c["calibration"]["mean_predicted"],
            c["calibration"]["fraction_late"],
            "mean predicted probability",
            "observed late share",
            "calibration",
        ),
    }
    for name, (x, y, xlabel, ylabel, title) in figures.items():
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(x, y, marker="." if name == "calibration" else None)
        if name != "pr":
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{title} ({m['eval_month']})")
        fig.tight_layout()
        fig.savefig(directory / f"{name}.png", dpi=100)
        plt.close(fig)
    table = pd.crosstab(c["confusion"]["actual"], c["confusion"]["predicted"])
    table = table.reindex(index=["on_time", "late"], columns=["on_time", "late"], fill_value=0)
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(table.to_numpy(), cmap="Blues")
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{value:,}", ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=table.columns,
        yticklabels=table.index,
        xlabel="predicted",
        ylabel="actual",
        title=f"threshold {m['threshold']:.2f}",
    )
    fig.tight_layout()
    fig.savefig(directory / "confusion.png", dpi=100)
    plt.close(fig)


def backtest_document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``months``: the list code reads (drift, card); ``by_month``: the same numbers keyed by
    month, because `dvc metrics show/diff` flattens mappings but skips lists."""
    by_month = {r["month"]: {k: v for k, v in r.items() if isinstance(v, float)} for r in rows}
    return {"months": rows, "by_month": by_month}


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("evaluate", __doc__, argv, run, (DataFileError, TrainError))


def run(params: Params, args: argparse.Namespace) -> int:
    from flightdelay.core.model_io import load_model_bundle

    started = time.perf_counter()
    paths = params.paths
    features = read_features(paths.features)
    bundle = load_model_bundle(paths.model)
    evaluation = evaluate(
        features, bundle.pipeline, bundle.threshold, params.train, params.evaluate
    )
    # Through their types: a key the readers do not know fails here, not downstream.
    for output, payload, path in (
        (EvaluateMetrics, evaluation.metrics, paths.evaluation),
        (Backtest, backtest_document(evaluation.backtest), paths.backtest),
        (Slices, evaluation.slices, paths.slices),
        (Importance, {"features": evaluation.importance}, paths.importance),
    ):
        output.parse(payload, path).write(path)
    write_plots(evaluation, paths.plots)
    paths.predictions.parent.mkdir(parents=True, exist_ok=True)
    evaluation.predictions.to_parquet(paths.predictions, index=False)
    paths.backtest_predictions.parent.mkdir(parents=True, exist_ok=True)
    evaluation.backtest_predictions.to_parquet(paths.backtest_predictions, index=False)
    m = evaluation.metrics
    print(
        f"evaluate {m['eval_month']}: ROC AUC {m['roc_auc']:.4f}, PR AUC {m['pr_auc']:.4f}, "
        f"F1 {m['f1']:.4f}, accuracy {m['accuracy']:.4f} (majority {m['baseline_accuracy']:.4f})"
        f"; backtest "
        + ", ".join(
            f"{b['month']} {b.get('roc_auc', float('nan')):.4f}" for b in evaluation.backtest
        )
        + f" ({time.perf_counter() - started:.1f}s)"
    )
    return 0

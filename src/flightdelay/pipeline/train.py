"""Stage ``train``: fit the model on every month before the newest one (the evaluation month).

The model is a scikit-learn Pipeline: an OrdinalEncoder for the categorical columns feeding a
HistGradientBoostingClassifier with native categorical support and an increasing monotonic
constraint on precipitation (more rain never lowers the predicted risk). The decision threshold
maximises F1 on the training rows' own (in-sample) scores: cheap, uses no evaluation data, and
is reported beside the threshold-free metrics (ROC AUC, PR AUC) that do not depend on it.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import precision_recall_curve
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from flightdelay.core.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES
from flightdelay.core.io import DataFileError, sha256_file
from flightdelay.core.params import Params, TrainParams
from flightdelay.core.stage import stage_main
from flightdelay.pipeline.featurize import TARGET

#: Monotonic constraints (+1: the score never decreases as the feature grows).
MONOTONIC: dict[str, int] = {"precip": 1}
#: OpenMP threads of every fit, whatever the machine. HistGradientBoosting sums gradients in one
#: chunk per thread, so the thread count changes the model's last bits (measured: 1 and 2 threads
#: give different model.skops on the real data); with it fixed, a laptop, CI and a 1-CPU
#: container train the bytes dvc.lock records.
FIT_THREADS = 2


class TrainError(ValueError):
    """The feature table cannot be trained on (missing columns, too few months, one class)."""


@dataclass(frozen=True)
class TrainResult:
    pipeline: Pipeline
    threshold: float
    train_months: list[str]
    eval_month: str
    train_metrics: dict[str, float]


def make_pipeline(params: TrainParams) -> Pipeline:
    """The unfitted model: categorical encoding + gradient boosting, seeded."""
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                list(CATEGORICAL_FEATURES),
            ),
            ("numeric", "passthrough", list(NUMERIC_FEATURES)),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    model = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        categorical_features=list(CATEGORICAL_FEATURES),
        monotonic_cst=MONOTONIC,
        early_stopping=True,
        validation_fraction=params.validation_fraction,
        n_iter_no_change=params.early_stopping_rounds,
        random_state=params.seed,
    )
    return Pipeline([("encode", encode), ("model", model)])


def check_features(features: pd.DataFrame) -> None:
    missing = [c for c in ("month", *FEATURE_COLUMNS, TARGET) if c not in features.columns]
    if missing:
        raise TrainError(f"feature table lacks column(s) {missing} (re-run `dvc repro featurize`)")


def split_months(features: pd.DataFrame) -> tuple[list[str], str]:
    """(training months, evaluation month): the newest month is held out, the rest train."""
    months = sorted(features["month"].unique())
    if len(months) < 2:
        raise TrainError(f"need at least two months of data to hold one out, found {months}")
    return months[:-1], months[-1]


def fit(features: pd.DataFrame, params: TrainParams) -> Pipeline:
    """Fit a fresh pipeline on the given rows (no split, no threshold)."""
    y = features[TARGET].to_numpy()
    if len(np.unique(y)) < 2:
        raise TrainError(f"training rows hold a single class ({np.unique(y).tolist()})")
    with fixed_threads(FIT_THREADS):
        return make_pipeline(params).fit(features.loc[:, list(FEATURE_COLUMNS)], y)


@contextmanager
def fixed_threads(n: int) -> Iterator[None]:
    """Exactly ``n`` OpenMP threads inside the block, even on a machine with fewer CPUs.

    scikit-learn caps its threads at the CPU count unless ``OMP_NUM_THREADS`` is set, and then
    uses OpenMP's current maximum, which threadpoolctl sets; both are restored on exit.
    """
    from threadpoolctl import threadpool_limits

    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        with threadpool_limits(limits=n, user_api="openmp"):
            yield
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before


def score(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """Probability of a late arrival for each row."""
    return pipeline.predict_proba(features.loc[:, list(FEATURE_COLUMNS)])[:, 1]


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def train(features: pd.DataFrame, params: TrainParams) -> TrainResult:
    """Fit on every month but the newest and choose the F1-maximising threshold on them."""
    check_features(features)
    train_months, eval_month = split_months(features)
    rows = features[features["month"].isin(train_months)]
    pipeline = fit(rows, params)
    y = rows[TARGET].to_numpy()
    scores = score(pipeline, rows)
    threshold = best_f1_threshold(y, scores)
    from sklearn.metrics import roc_auc_score

    metrics = {
        "train_rows": float(len(rows)),
        "train_roc_auc": float(roc_auc_score(y, scores)),
        "train_late_share": float(y.mean()),
        "n_iter": float(pipeline[-1].n_iter_),
    }
    return TrainResult(pipeline, threshold, train_months, eval_month, metrics)


def input_schema(features: pd.DataFrame) -> list[dict[str, str]]:
    """Column names and dtypes the pipeline expects, in order."""
    return [
        {"name": c, "dtype": "string" if c in CATEGORICAL_FEATURES else "float64"}
        for c in FEATURE_COLUMNS
    ]


# ---------------------------------------------------------------- I/O edge


def git_commit() -> str:
    """HEAD's commit (with ``-dirty`` if tracked files changed), or ``unknown`` outside git."""
    from flightdelay.core import gitops

    return gitops.head_description()


def data_hash(dvc_file: Path = Path("data.dvc")) -> str:
    """outs[0].md5 of data.dvc: the exact data version the model was trained on."""
    from flightdelay.core import yamltext

    try:
        return str(yamltext.load(dvc_file.read_text())["outs"][0]["md5"])
    except FileNotFoundError:
        raise DataFileError(f"{dvc_file}: not found (run from the repository root)") from None
    except (KeyError, IndexError, TypeError):
        raise DataFileError(f"{dvc_file}: has no outs[0].md5") from None


def main(argv: Sequence[str] | None = None) -> int:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")

    return stage_main("train", __doc__, argv, run, (DataFileError, TrainError), arguments)


def run(params: Params, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    features = read_features(params.paths.features)
    result = train(features, params.train)
    data_md5 = data_hash()
    from flightdelay.core import model_io

    metadata = save(result, features, params, data_md5, log_mlflow=not args.no_mlflow)
    provenance = model_io.read_provenance(params.paths.model, metadata["sha256"])
    logged = (
        f"MLflow run {provenance.mlflow_run_id} in {provenance.mlflow_tracking_uri}"
        if provenance and provenance.mlflow_run_id
        else "not logged to MLflow"
    )
    print(
        f"train: {int(result.train_metrics['train_rows'])} rows of {result.train_months[0]}.."
        f"{result.train_months[-1]}, {int(result.train_metrics['n_iter'])} iterations, "
        f"threshold {result.threshold:.3f} -> {params.paths.model} "
        f"(sha256 {metadata['sha256'][:12]}, {logged}, {time.perf_counter() - started:.1f}s)"
    )
    return 0


def read_features(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataFileError(f"{path}: feature table not found (run `dvc repro featurize`)")
    return pd.read_parquet(path)


def save(
    result: TrainResult,
    features: pd.DataFrame,
    params: Params,
    data_md5: str,
    log_mlflow: bool = True,
) -> dict[str, Any]:
    """Write model.skops, the context tables and model.json; log the run to MLflow.

    model.json holds only what code, params and data determine (no run id, commit, host or
    clock), so retraining the same commit gives the bytes its dvc.lock records. Those facts go
    to MLflow and to the sidecar beside the directory (:func:`model_io.provenance_path`).
    """
    from flightdelay.core import model_io

    model_dir = params.paths.model
    path = model_io.dump_pipeline(result.pipeline, model_dir)
    model_io.write_context(
        model_io.read_context(params.paths.context), model_dir / model_io.CONTEXT_DIR
    )
    sha256 = sha256_file(path)
    metadata: dict[str, Any] = {
        "sha256": sha256,
        "threshold": result.threshold,
        "input_schema": input_schema(features),
        "target": f"arr_delay >= {params.featurize.target_delay_minutes} minutes",
        "featurize": params.featurize.model_dump(),
        "train": params.train.model_dump(),
        "train_months": result.train_months,
        "eval_month": result.eval_month,
        "train_metrics": result.train_metrics,
        "data_md5": data_md5,
        "trusted_types": list(model_io.TRUSTED_TYPES),
    }
    model_io.write_metadata(model_dir, metadata)
    commit = git_commit()
    run_id = uri = None
    if log_mlflow:
        from flightdelay.core import tracking

        example = features.loc[:, list(FEATURE_COLUMNS)].head(5)
        run_id = tracking.log_training(
            result.pipeline,
            example,
            params={
                **_flat("featurize", params.featurize.model_dump()),
                **_flat("train", params.train.model_dump()),
            },
            metrics={**result.train_metrics, "threshold": result.threshold},
            tags={
                tracking.SHA256_TAG: sha256,
                "git_commit": commit,
                "data_md5": data_md5,
                "train_months": ",".join(result.train_months),
            },
            trusted_types=list(model_io.TRUSTED_TYPES),
        )
        uri = tracking.public_uri(tracking.configure())
    model_io.write_manifest(model_dir)  # last in the directory: it lists every file written above
    # Beside the directory (model_io.provenance_path), so no hash or signature depends on it.
    model_io.write_provenance(
        model_dir,
        model_io.Provenance(
            sha256=sha256,
            git_commit=commit,
            mlflow_run_id=run_id,
            mlflow_tracking_uri=uri,
            trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
            host=socket.gethostname(),
        ),
    )
    return metadata


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in values.items()}

"""What a model card is made of: every pipeline output it reads (from the work tree, or from a git
revision through :class:`flightdelay.core.artifacts.RevisionFiles`), the bootstrap intervals on
the evaluation month, and the hashes of the outputs it was made from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay import MODEL_NAME
from flightdelay.core.artifacts import ArtifactError, DvcLock, RevisionFiles, directory_md5
from flightdelay.core.drift_summary import DRIFT_JSON, DriftSummary
from flightdelay.core.io import DataFileError
from flightdelay.core.outputs import Backtest, EvaluateMetrics, Importance, ModelMetadata, Slices
from flightdelay.core.stats import Interval, metric_intervals, roc_auc, slice_intervals

DATA_KEY = "data"  # fingerprint key of the raw data (data.dvc's outs md5; a dep in dvc.lock)


class CardError(ValueError):
    """The card cannot be made or checked; the message names the file, key or stage."""


@dataclass(frozen=True)
class CardInputs:
    """Everything a card is made of, as read from the pipeline's outputs."""

    model: Mapping[str, Any]  # model.json
    evaluate: Mapping[str, Any]  # evaluate.json
    backtest: Sequence[Mapping[str, Any]]  # backtest.json "months"
    slices: Mapping[str, Sequence[Mapping[str, Any]]]  # slices.json
    importance: Sequence[Mapping[str, Any]]  # importance.json "features"
    drift: DriftSummary  # drift.json
    batches: Mapping[str, Mapping[str, Any]]  # data.dvc meta.files: relative path -> md5, rows
    intervals: Mapping[str, Interval]  # metric -> bootstrap interval on the evaluation month
    slice_intervals: Mapping[str, Mapping[str, Interval]]  # column -> value -> ROC AUC interval
    intersections: Sequence[Mapping[str, Any]]  # carrier x origin: n, late_share, roc_auc
    fingerprint: Mapping[str, str]  # dvc.lock path -> md5 of the outputs the card was made from
    names: Mapping[str, Mapping[str, str]]  # slice column -> code -> full name (airline, airport)
    audit: Any = (
        None  # flightdelay.pipeline.audit.AuditReport (audit.json); None where a revision has none
    )

    @property
    def model_md5(self) -> str:
        """DVC's hash of the model directory (the one directory among the card's inputs)."""
        dirs = (v for k, v in self.fingerprint.items() if k != DATA_KEY and v.endswith(".dir"))
        return next(dirs, "unknown")


@dataclass(frozen=True)
class CardSpec:
    """Which card: the model's name, its version (None: the working tree) and how it was made."""

    name: str
    version: str | None
    registered_commit: str | None
    confidence: float
    bootstrap_samples: int
    seed: int
    min_slice_rows: int
    top_features: int
    signature: str | None = None  # who signed the registered model, and its digest (release)
    # Provenance of a version's card, found outside the model (core.model_io): the commit whose
    # dvc.lock first records the model, and the MLflow training run tagged with its sha256.
    trained_commit: str | None = None
    mlflow_run_id: str | None = None

    @classmethod
    def of(
        cls,
        params: Any,
        version: str | None,
        registered_commit: str | None,
        signature: str | None = None,
        trained_commit: str | None = None,
        mlflow_run_id: str | None = None,
    ) -> CardSpec:
        """The spec params.yaml gives (``bootstrap:``, ``card:``): the one place it is built."""
        return cls(
            name=MODEL_NAME,
            version=version,
            registered_commit=registered_commit,
            signature=signature,
            trained_commit=trained_commit,
            mlflow_run_id=mlflow_run_id,
            confidence=params.bootstrap.confidence,
            bootstrap_samples=params.bootstrap.samples,
            seed=params.bootstrap.seed,
            min_slice_rows=params.evaluate.min_slice_rows,
            top_features=params.card.top_features,
        )


def intersections(
    predictions: pd.DataFrame, columns: tuple[str, str], min_rows: int
) -> list[dict[str, Any]]:
    """Rows, late share and ROC AUC of every pair of values of two columns (``min_rows`` or more
    rows, both classes), lowest ROC AUC first."""
    rows = []
    for (a, b), group in predictions.groupby(list(columns), sort=True):
        y = group["y_true"].to_numpy()
        if len(group) >= min_rows and np.unique(y).size == 2:
            rows.append(
                {
                    columns[0]: str(a),
                    columns[1]: str(b),
                    "n": len(group),
                    "late_share": float(y.mean()),
                    "roc_auc": roc_auc(y, group["score"].to_numpy()),
                }
            )
    return sorted(rows, key=lambda r: (r["roc_auc"], r[columns[0]], r[columns[1]]))


def get(mapping: Mapping[str, Any], key: str, source: str) -> Any:
    """``mapping[key]``, or a CardError naming the file and the key."""
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise CardError(f"{source} lacks the key {key!r} (re-run `dvc repro`)")
    return mapping[key]


def open_revision(rev: str | None) -> RevisionFiles:
    """The files of the work tree (None) or of git revision ``rev``."""
    try:
        return RevisionFiles(rev)
    except ArtifactError as exc:
        raise CardError(str(exc)) from None


def input_paths(params: Any) -> dict[str, Path]:
    """The outputs a card is made of, by the path dvc.lock names them with."""
    p = params.paths
    paths = [
        p.model,
        p.predictions,
        p.evaluation,
        p.backtest,
        p.slices,
        p.importance,
        p.drift / DRIFT_JSON,
        p.audit,
    ]
    return {path.as_posix(): path for path in paths}


def _names(reader: RevisionFiles, params: Any) -> dict[str, dict[str, str]]:
    """Airline and airport names by code, for the per-slice tables."""
    names: dict[str, dict[str, str]] = {}
    for column, path, key in (
        ("carrier", params.paths.airlines, "carrier"),
        ("origin", params.paths.airports, "faa"),
    ):
        try:
            frame = pd.read_csv(BytesIO(reader.bytes(path, "reference table")), dtype=str)
        except DataFileError:
            continue
        if {key, "name"} <= set(frame.columns):
            names[column] = dict(zip(frame[key], frame["name"], strict=True))
    return names


def load_inputs(params: Any, reader: RevisionFiles, lock: DvcLock | None) -> CardInputs:
    """Read every output the card is made of and compute the bootstrap intervals."""
    from flightdelay.core.data import DVC_FILE, manifest
    from flightdelay.core.model_io import METADATA_FILE

    p = params.paths
    model_path = p.model / METADATA_FILE
    drift_path = p.drift / DRIFT_JSON
    # Every file is read before any is checked, so a revision that lacks one is told that first.
    raw_model = reader.json(model_path, "model metadata")
    raw_evaluate = reader.json(p.evaluation, "evaluation metrics")
    raw_backtest = reader.json(p.backtest, "backtest metrics")
    raw_slices = reader.json(p.slices, "slice metrics")
    raw_importance = reader.json(p.importance, "permutation importance")
    raw_drift = reader.json(drift_path, "drift summary")
    audit = _read_audit(reader, p.audit)
    dvc_file = reader.yaml(DVC_FILE, "data.dvc")
    model = ModelMetadata.parse(raw_model, model_path).to_json()
    evaluated = EvaluateMetrics.parse(raw_evaluate, p.evaluation)
    evaluate = evaluated.to_json()
    backtest = Backtest.parse(raw_backtest, p.backtest).to_json()
    slices = Slices.parse(raw_slices, p.slices).to_json()
    importance = Importance.parse(raw_importance, p.importance).to_json()
    drift = DriftSummary.parse(raw_drift, drift_path)
    try:
        batches = manifest(dvc_file)
    except Exception as exc:  # DataError: inconsistent or missing manifest
        raise CardError(str(exc)) from None
    try:
        predictions = pd.read_parquet(BytesIO(reader.bytes(p.predictions, "predictions")))
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{p.predictions}: not a readable parquet file: {exc}") from None
    missing = [c for c in ("y_true", "score", *slices) if c not in predictions.columns]
    if missing:
        raise CardError(f"{p.predictions} lacks column(s) {missing} (re-run `dvc repro evaluate`)")
    n = int(evaluated.n)
    if n != len(predictions):
        raise CardError(
            f"{p.predictions} has {len(predictions)} rows but evaluate.json reports n={n}: "
            "they come from different runs (re-run `dvc repro evaluate`)"
        )
    samples, seed = params.bootstrap.samples, params.bootstrap.seed
    confidence, min_rows = params.bootstrap.confidence, params.evaluate.min_slice_rows
    y, scores = predictions["y_true"].to_numpy(), predictions["score"].to_numpy()
    threshold = evaluated.threshold
    columns = [str(c) for c in slices]
    if lock is None:  # the working tree: hash the files themselves
        fingerprint = {
            key: directory_md5(path)
            for key, path in input_paths(params).items()
            if path.exists() or path != p.audit
        }
    else:  # another revision: its dvc.lock records them
        outs = lock.outs()
        fingerprint = {
            key: outs.get(key, "unknown")
            for key in input_paths(params)
            if key in outs or key != p.audit.as_posix()
        }
    fingerprint[DATA_KEY] = str(dvc_file["outs"][0]["md5"])
    try:
        intervals = metric_intervals(y, scores, threshold, samples, seed, confidence)
    except ValueError as exc:  # no evaluation rows
        raise CardError(str(exc)) from None
    return CardInputs(
        model=model,
        evaluate=evaluate,
        backtest=backtest["months"],
        slices=slices,
        importance=importance["features"],
        drift=drift,
        batches=batches,
        intervals=intervals,
        slice_intervals=slice_intervals(predictions, columns, min_rows, samples, seed, confidence),
        intersections=intersections(predictions, (columns[0], columns[1]), min_rows)
        if len(columns) >= 2
        else [],
        fingerprint=fingerprint,
        names=_names(reader, params),
        audit=audit,
    )


def _read_audit(reader: RevisionFiles, path: Path) -> Any:
    """The leakage audit, or None for a revision made before the audit stage existed."""
    from flightdelay.pipeline.audit import AuditReport

    try:
        raw = reader.json(path, "leakage audit")
    except DataFileError as exc:
        if "not found" in str(exc):
            return None
        raise
    try:
        return AuditReport.model_validate(raw)
    except ValueError as exc:
        raise CardError(f"{path}: not a leakage audit: {exc}") from None


def card_path(params: Any, version: str | None = None) -> Path:
    """``${paths.cards}/<MODEL_NAME>.md``, or ``<MODEL_NAME>@<version>.md`` for a version."""
    name = MODEL_NAME if version is None else f"{MODEL_NAME}@{version}"
    return Path(params.paths.cards) / f"{name}.md"


def provenance(
    inputs: CardInputs, rev: str, *, find_run: bool = True
) -> tuple[str | None, str | None]:
    """(commit whose dvc.lock first records the model, MLflow training run id) for a version's
    card; either is None when git or the tracking store does not know it (the run id too when
    ``find_run`` is false: the caller has its own, and the store is not searched)."""
    from flightdelay.core import tracking
    from flightdelay.core.gitops import GitOpsError, first_commit_recording

    md5 = inputs.model_md5
    try:
        commit = first_commit_recording(md5, rev) if md5 != "unknown" else None
    except GitOpsError:
        commit = None
    return commit, tracking.find_run(str(inputs.model["sha256"])) if find_run else None

"""MLflow at the edge: the only module that talks to a tracking store.

The store is whatever ``MLFLOW_TRACKING_URI`` says (the Makefile defaults it to
``sqlite:///mlflow.db``, whose artifacts go to ``mlruns/``; CI or a laptop can point it at a
server). MLflow's usage telemetry (which also writes ``~/.config/mlflow/telemetry.json``) is off
unless ``MLFLOW_DISABLE_TELEMETRY=false`` is set. Nothing happens on import.

A training run is tagged with the sha256 of its model.skops (``model_sha256``): model.json holds
no run id (it would make every run's model directory differ), so :func:`find_run` looks it up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # pandas and sklearn (~2 s with scipy) only for a training run's types
    import pandas as pd
    from sklearn.pipeline import Pipeline

EXPERIMENT = "flightdelay"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SHA256_TAG = "model_sha256"


def configure() -> str:
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` (default DEFAULT_TRACKING_URI), telemetry off
    unless the caller turned it on; return the URI."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import logging

    import mlflow

    # Its INFO lines (creating the store's tables, the experiment) would crowd the stage's one
    # line; warnings and errors still show.
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    return uri


def public_uri(uri: str) -> str:
    """``uri`` without a user name or password, fit to be written down."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def log_training(
    pipeline: Pipeline,
    input_example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    trusted_types: list[str],
) -> str:
    """Log one training run (params, metrics, tags, skops model with signature); return its id.

    ``tags`` should hold SHA256_TAG, the key :func:`find_run` looks the run up by.
    """
    configure()
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_experiment(EXPERIMENT)
    signature = infer_signature(input_example, pipeline.predict_proba(input_example)[:, 1])
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=trusted_types,
            signature=signature,
            input_example=input_example,
            # Stated, not inferred: inference loads the model in a subprocess (seconds).
            pip_requirements=requirements(),
        )
        return str(run.info.run_id)


def find_run(sha256: str) -> str | None:
    """Id of the newest training run in the store whose model has ``sha256``, or None (also when
    the store is unreachable: provenance is shown where known, it never blocks a card)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None  # searching would create an empty store
    configure()
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        runs = mlflow.search_runs(
            experiment_names=[EXPERIMENT],
            filter_string=f"tags.{SHA256_TAG} = '{sha256}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
    except MlflowException:
        return None
    return str(runs[0].info.run_id) if runs else None


def requirements() -> list[str]:
    """What loading the logged model needs, pinned to the versions that trained it."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "numpy", "pandas")]

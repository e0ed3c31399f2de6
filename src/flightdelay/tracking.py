"""MLflow at the edge: the only module that talks to a tracking store.

The store is whatever ``MLFLOW_TRACKING_URI`` says (the Makefile defaults it to
``sqlite:///mlflow.db``; CI or a laptop can point it at a server). Nothing happens on import.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

EXPERIMENT = "flightdelay"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def log_training(
    pipeline: Pipeline,
    input_example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    trusted_types: list[str],
) -> str:
    """Log one training run (params, metrics, tags, skops model with signature); return its id."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
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


def requirements() -> list[str]:
    """What loading the logged model needs, pinned to the versions that trained it."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "numpy", "pandas")]

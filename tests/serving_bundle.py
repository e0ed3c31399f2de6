"""A small, real model bundle for the serving tests: synthetic raw tables (tests/synthetic.py)
through featurize, the train module's core function and its ``save`` (the pipeline's own code),
so the tests neither need data/ nor a pipeline run. Each bundle is trained once per session (per
pytest-xdist worker) and every caller gets its own copy. Also the scorers' test pipeline and the
feature rows they must score as it does (:func:`scorer_pipeline`, :func:`scorer_rows`)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from flightdelay.core.context import build_context
from flightdelay.core.features import FEATURE_COLUMNS
from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.core.model_io import write_context
from flightdelay.core.params import FeaturizeParams, TrainParams, load_params
from flightdelay.pipeline.featurize import featurize
from flightdelay.pipeline.train import save, train
from synthetic import FEATURIZE, TRAIN, feature_table, raw_tables

MONTHS = (1, 2, 3, 4)
DATA_MD5 = "0123456789abcdef0123456789abcdef.dir"


def build_model_dir(root: Path, repo_root: Path, **featurize_overrides: Any) -> Path:
    """Train on the synthetic months (featurize params overridden) and write a verified bundle to
    ``root / "model"``, its context tables to ``root / "context"`` and the provenance sidecar
    beside the bundle; returns the bundle's directory."""
    key = (repo_root.resolve(), tuple(sorted(featurize_overrides.items())))
    if key not in _TRAINED:
        template = Path(tempfile.mkdtemp(prefix="flightdelay-synthetic-model-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        _train(template, repo_root, featurize_overrides)
        _TRAINED[key] = template
    # A copy, not the template: tests corrupt, sign and re-save their bundle. Training is
    # deterministic (model.json holds no clock or host), so the bytes are those a retrain writes.
    shutil.copytree(_TRAINED[key], root, dirs_exist_ok=True)
    return root / "model"


_TRAINED: dict[tuple[Path, tuple[tuple[str, Any], ...]], Path] = {}


def _train(root: Path, repo_root: Path, featurize_overrides: dict[str, Any]) -> None:
    tables = raw_tables(months=MONTHS)
    context = build_context(
        tables["flights"], tables["weather"], tables["planes"], tables["airports"]
    )
    fparams = FeaturizeParams(**{**FEATURIZE, **featurize_overrides})
    features = featurize(tables["flights"], context, fparams)
    params = load_params(repo_root / "params.yaml")
    paths = params.paths.model_copy(update={"model": root / "model", "context": root / "context"})
    params = params.model_copy(
        update={"paths": paths, "featurize": fparams, "train": TrainParams(**TRAIN)}
    )
    write_context(context, paths.context)
    save(train(features, params.train), features, params, DATA_MD5, log_mlflow=False)


def raw_flights(month: int = 4) -> pd.DataFrame:
    """The synthetic raw flights of one month, as the pipeline reads them (outcomes included)."""
    return raw_tables(months=MONTHS)["flights"].query("month == @month").reset_index(drop=True)


def records(flights: pd.DataFrame) -> list[dict[str, Any]]:
    """What a caller sends: the raw pre-departure fields only, as JSON-ready dicts."""
    rows = flights.loc[:, list(RAW_COLUMNS)].to_dict("records")
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in rows
    ]


@functools.cache
def scorer_pipeline() -> Pipeline:
    """The train module's pipeline fitted on the synthetic feature table (once per session): the
    model the scorers (treelite, FastPredictor) must reproduce. Callers must not change it."""
    return train(feature_table(), TrainParams(**TRAIN)).pipeline


def scorer_rows() -> pd.DataFrame:
    """Feature rows of the held-out month, with unseen, missing and extreme values mixed in."""
    features = feature_table()
    rows = features[features["month"] == features["month"].max()]
    rows = rows.loc[:, list(FEATURE_COLUMNS)].reset_index(drop=True)
    rows.loc[::7, "carrier"] = "ZZ"
    rows.loc[::5, "dest"] = np.nan
    rows.loc[::6, "plane_type"] = None
    rows.loc[::4, "precip"] = np.nan
    rows.loc[::9, "temp"] = 1e9
    rows.loc[::11, "origin_recent_mean_delay"] = -1e9
    return rows

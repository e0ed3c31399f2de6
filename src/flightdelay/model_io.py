"""The model directory: the one place a model bundle is written and read.

Layout of ``${paths.model}``::

    model.skops         the fitted sklearn Pipeline (skops format, never pickle)
    model.json          metadata: input schema, threshold, sha256 of model.skops, provenance,
                        featurize params the features must be built with, trusted types
    context/*.parquet   the Context tables build_features needs (departures, weather, ...)

:func:`load_model_bundle` refuses a model.skops whose sha256 differs from model.json and loads it
with an explicit allow-list of types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from sklearn.pipeline import Pipeline

from flightdelay.features import Context
from flightdelay.io import DataFileError, read_json, sha256_file, write_json
from flightdelay.params import FeaturizeParams

MODEL_FILE = "model.skops"
METADATA_FILE = "model.json"
CONTEXT_DIR = "context"

#: Types (beyond skops' defaults) that model.skops may contain; anything else is refused on save
#: and on load. HistGradientBoosting keeps a ``functools.partial`` of sklearn's ``check_array``;
#: skops checks the wrapped function against this list too, so trusting the wrapper is safe.
TRUSTED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)


class ModelBundleError(DataFileError):
    """A model directory is incomplete, tampered with, or holds untrusted types."""


class ModelBundle(NamedTuple):
    pipeline: Pipeline
    metadata: dict[str, Any]
    context: Context

    @property
    def featurize_params(self) -> FeaturizeParams:
        """The featurize params the model was trained with: serve with exactly these."""
        return FeaturizeParams.model_validate(self.metadata["featurize"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])


def dump_pipeline(pipeline: Pipeline, model_dir: Path) -> Path:
    """Write model.skops, checking that it holds only TRUSTED_TYPES; return its path."""
    import skops.io as sio

    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_FILE
    sio.dump(pipeline, path)
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if untrusted:
        path.unlink()
        raise ModelBundleError(f"{path}: pipeline holds types not in TRUSTED_TYPES: {untrusted}")
    return path


def write_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    write_json(model_dir / METADATA_FILE, metadata)


def write_context(context: Context, directory: Path) -> None:
    """One parquet file per Context table."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in context.tables().items():
        table.to_parquet(directory / f"{name}.parquet", index=False)


def read_context(directory: Path) -> Context:
    """A Context from one parquet file per table (as written by :func:`write_context`)."""
    import pandas as pd

    tables = {}
    for name in Context.TABLES:
        path = directory / f"{name}.parquet"
        if not path.is_file():
            raise ModelBundleError(f"{path}: context table not found")
        tables[name] = pd.read_parquet(path)
    return Context.from_tables(tables)


def load_pipeline(model_dir: Path, metadata: dict[str, Any]) -> Pipeline:
    """model.skops after checking its sha256 against model.json; only TRUSTED_TYPES load."""
    import skops.io as sio

    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise ModelBundleError(f"{path}: model file not found")
    expected = metadata.get("sha256")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelBundleError(
            f"{path}: sha256 {actual} does not match {model_dir / METADATA_FILE} "
            f"({expected}); refusing to load a model that is not the one recorded"
        )
    try:
        pipeline = sio.load(path, trusted=list(TRUSTED_TYPES))
    except sio.exceptions.UntrustedTypesFoundException as exc:
        raise ModelBundleError(f"{path}: holds untrusted types: {exc}") from None
    if not isinstance(pipeline, Pipeline):
        raise ModelBundleError(f"{path}: holds a {type(pipeline).__name__}, not a Pipeline")
    return pipeline


def load_model_bundle(model_dir: Path | str) -> ModelBundle:
    """(pipeline, metadata, context) of a model directory, verified; raise ModelBundleError."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelBundleError(f"{model_dir}: model directory not found (run `dvc repro train`)")
    metadata = read_json(model_dir / METADATA_FILE, "model metadata")
    if not isinstance(metadata, dict):
        raise ModelBundleError(f"{model_dir / METADATA_FILE}: not a JSON object")
    missing = [k for k in ("sha256", "threshold", "featurize", "input_schema") if k not in metadata]
    if missing:
        raise ModelBundleError(f"{model_dir / METADATA_FILE}: lacks key(s) {missing}")
    pipeline = load_pipeline(model_dir, metadata)
    return ModelBundle(pipeline, metadata, read_context(model_dir / CONTEXT_DIR))

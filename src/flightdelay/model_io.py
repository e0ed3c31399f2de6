"""The model directory: the one place a model bundle is written and read.

Layout of ``${paths.model}``::

    model.skops         the fitted sklearn Pipeline (skops format, never pickle)
    model.json          metadata: input schema, threshold, sha256 of model.skops, data hash,
                        featurize params the features must be built with, trusted types
    context/*.parquet   the Context tables build_features needs (departures, weather, ...)
    provenance.json     optional sidecar, not part of the model (``.dvcignore`` keeps it out of
                        the directory's DVC hash): MLflow run id, commit, host, wall clock

Everything but the sidecar is a deterministic function of code, params and data, so a fresh
clone that retrains gets the bytes dvc.lock records. What differs from run to run lives in the
sidecar, written by ``flightdelay train`` (and by ``flightdelay release`` with the released
commit), and in MLflow (the run is tagged with the model's sha256, :func:`tracking.find_run`).

:func:`load_model_bundle` refuses a model.skops whose sha256 differs from model.json and loads it
with an explicit allow-list of types.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict
from sklearn.pipeline import Pipeline

from flightdelay.features import Context
from flightdelay.io import DataFileError, read_json, sha256_file, write_json
from flightdelay.params import FeaturizeParams

MODEL_FILE = "model.skops"
METADATA_FILE = "model.json"
CONTEXT_DIR = "context"
#: The sidecar; kept out of DVC's hash of the model directory by ``.dvcignore``.
PROVENANCE_FILE = "provenance.json"

#: Types (beyond skops' defaults) that model.skops may contain; anything else is refused on save
#: and on load. HistGradientBoosting keeps a ``functools.partial`` of sklearn's ``check_array``;
#: skops checks the wrapped function against this list too, so trusting the wrapper is safe.
TRUSTED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)


# An object id in a skops schema: ``"__id__": 1396...`` or an array file ``"1396....npy"``.
_SKOPS_ID = re.compile(r'("__id__": )(\d+)()|(")(\d+)(\.npy")')


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
    _make_reproducible(path)
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if untrusted:
        path.unlink()
        raise ModelBundleError(f"{path}: pipeline holds types not in TRUSTED_TYPES: {untrusted}")
    return path


def _make_reproducible(path: Path) -> None:
    """Rewrite a skops zip so the same pipeline always gives the same bytes.

    skops identifies objects (``"__id__"`` and the array file names) by their ``id()`` in memory
    and stamps every zip entry with the current time, so two identical fits would differ in
    sha256 and a release could not verify a model it reproduced. Each id is renumbered in order of
    first appearance in schema.json (a consistent renaming, so shared references stay shared) and
    every entry gets a fixed timestamp; nothing else changes.
    """
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    schema = entries.pop("schema.json").decode()
    ids: dict[str, str] = {}

    def renumber(match: re.Match[str]) -> str:
        before, old, after = (g for g in match.groups() if g is not None)
        return f"{before}{ids.setdefault(old, str(len(ids) + 1))}{after}"

    schema = _SKOPS_ID.sub(renumber, schema)
    files = {}
    for name, content in entries.items():
        stem, suffix = name.split(".", 1)
        if stem not in ids:
            raise ModelBundleError(f"{path}: {name} is not referenced by schema.json")
        files[f"{ids[stem]}.{suffix}"] = content
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in [("schema.json", schema.encode()), *sorted(files.items())]:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)


def write_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    write_json(model_dir / METADATA_FILE, metadata)


class Provenance(BaseModel):
    """Where and when a model was made: facts that differ between two runs of the same code.

    ``git_commit`` is the commit whose dvc.lock records the model when ``flightdelay release``
    wrote the sidecar; written by ``flightdelay train`` it is HEAD at training time, ``-dirty``
    when tracked files had changed (the usual case: the run is committed afterwards).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str  # of the model.skops this sidecar describes
    git_commit: str | None = None
    mlflow_run_id: str | None = None
    mlflow_tracking_uri: str | None = None  # without credentials
    trained_at: str | None = None  # UTC, ISO 8601
    host: str | None = None


def hashed_files(model_dir: Path) -> list[Path]:
    """The files of a model directory that DVC hashes: all but the provenance sidecar."""
    sidecar = model_dir / PROVENANCE_FILE
    return sorted(p for p in model_dir.rglob("*") if p.is_file() and p != sidecar)


def write_provenance(model_dir: Path, provenance: Provenance) -> None:
    write_json(model_dir / PROVENANCE_FILE, provenance.model_dump())


def read_provenance(model_dir: Path | str, sha256: str) -> Provenance | None:
    """The sidecar of ``model_dir`` if it describes the model with ``sha256``, else None.

    A sidecar left behind by another model (or unreadable) is ignored rather than reported as
    this model's provenance.
    """
    path = Path(model_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        provenance = Provenance.model_validate(read_json(path, "model provenance"))
    except (DataFileError, ValueError):
        return None
    return provenance if provenance.sha256 == sha256 else None


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

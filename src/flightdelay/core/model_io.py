"""The model directory: the one place a model bundle is written and read.

Layout of ``${paths.model}``::

    model.skops         the fitted sklearn Pipeline (skops format, never pickle)
    model.json          metadata: input schema, threshold, sha256 of model.skops, data hash,
                        featurize params the features must be built with, trusted types
    context/*.parquet   the Context tables build_features needs (departures, weather, ...)
    SHA256SUMS          manifest: sha256 of every other file, ``sha256sum`` format, written
                        last by :func:`write_manifest` (``sha256sum -c SHA256SUMS`` checks it)

Every file of the directory is a deterministic function of code, params and data, so a fresh
clone that retrains gets the bytes dvc.lock records, and the manifest, the DVC hash and the
signature cover all of them. What differs from run to run (MLflow run id, commit, host, wall
clock) is in MLflow (the run is tagged with the model's sha256, :func:`tracking.find_run`) and in
a sidecar *beside* the directory, ``<model dir>.provenance.json`` (:func:`provenance_path`),
written by ``flightdelay train`` and by ``flightdelay release`` (with the released commit). It is
outside the directory so that nothing hashed, listed or signed can ever depend on a run.

:func:`load_model_bundle` verifies the manifest before reading any file (a missing, altered or
unlisted model file is refused, naming it), validates model.json (threshold a finite number in
[0, 1], input schema present, every key :class:`flightdelay.core.outputs.ModelMetadata` holds),
refuses a model.skops whose sha256 differs from model.json and loads it with an explicit
allow-list of types. Every refusal is one ModelBundleError line. model.json is written
(:func:`write_metadata`) and read (:func:`read_metadata`, :func:`load_model_bundle`) here only.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from flightdelay.core.context import Context
from flightdelay.core.io import DataFileError, read_json, sha256_file, write_json
from flightdelay.core.outputs import ModelMetadata
from flightdelay.core.params import FeaturizeParams

if TYPE_CHECKING:  # sklearn (and scipy under it, ~1.5 s) only where a model is loaded
    from sklearn.pipeline import Pipeline

MODEL_FILE = "model.skops"
METADATA_FILE = "model.json"
CONTEXT_DIR = "context"
MANIFEST_FILE = "SHA256SUMS"


#: The sidecar's suffix: ``outputs/model`` -> ``outputs/model.provenance.json`` (git-ignored).
PROVENANCE_SUFFIX = ".provenance.json"

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
_MANIFEST_LINE = re.compile(r"([0-9a-f]{64}) [ *](\S.*)")


class ModelBundleError(DataFileError):
    """A model directory is incomplete, tampered with, or holds untrusted types."""


class ModelBundle(NamedTuple):
    pipeline: Pipeline
    info: ModelMetadata  # model.json
    context: Context

    @property
    def metadata(self) -> dict[str, Any]:
        """model.json as the file holds it, as JSON types (lists, not tuples)."""
        return self.info.model_dump(mode="json", exclude_unset=True)

    @property
    def featurize_params(self) -> FeaturizeParams:
        """The featurize params the model was trained with: serve with exactly these."""
        return self.info.featurize

    @property
    def threshold(self) -> float:
        return self.info.threshold


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


def write_metadata(model_dir: Path, metadata: ModelMetadata | Mapping[str, Any]) -> None:
    """Write model.json through its type (a mapping is checked first, naming a bad key)."""
    path = model_dir / METADATA_FILE
    if not isinstance(metadata, ModelMetadata):
        metadata = check_metadata(path, metadata)
    metadata.write(path)


def read_metadata(model_dir: Path) -> ModelMetadata:
    """model.json of a model directory, checked (no model file is read); ModelBundleError."""
    path = model_dir / METADATA_FILE
    return check_metadata(path, read_json(path, "model metadata"))


def write_manifest(model_dir: Path) -> Path:
    """Write SHA256SUMS: the sha256 of every file of the model directory (sorted, relative
    paths). Call it after the last file is written; the service verifies it at start."""
    files = sorted(
        f.relative_to(model_dir).as_posix()
        for f in model_dir.rglob("*")
        if f.is_file() and f.relative_to(model_dir).as_posix() != MANIFEST_FILE
    )
    path = model_dir / MANIFEST_FILE
    path.write_text("".join(f"{sha256_file(model_dir / name)}  {name}\n" for name in files))
    return path


def verify_manifest(model_dir: Path) -> frozenset[str]:
    """Check every file SHA256SUMS lists against its sha256; return the listed (relative) paths.
    The files the service reads must all be listed (:func:`load_model_bundle` checks that)."""
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ModelBundleError(
            f"{path}: manifest not found (every model directory lists the sha256 of its files; "
            "a model trained before the manifest existed cannot be verified: retrain it with "
            "`flightdelay repro` or `make run`, whose train stage writes SHA256SUMS)"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelBundleError(f"{path}: manifest cannot be read: {exc}") from None
    listed: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        match = _MANIFEST_LINE.fullmatch(line)
        name = match.group(2) if match else ""
        if not match or name.startswith("/") or ".." in name.split("/"):
            raise ModelBundleError(
                f"{path}:{number}: not a '<sha256>  <relative path>' line: {line[:80]!r}"
            )
        listed[name] = match.group(1)
    for name, expected in listed.items():
        file = model_dir / name
        if not file.is_file():
            raise ModelBundleError(f"{file}: listed in {path} but missing")
        actual = sha256_file(file)
        if actual != expected:
            raise ModelBundleError(
                f"{file}: sha256 {actual} does not match {path} ({expected}); refusing to load "
                "a model directory that is not the one written"
            )
    return frozenset(listed)


def check_metadata(path: Path, metadata: Any) -> ModelMetadata:
    """model.json as its type, or a ModelBundleError naming the key (what the service needs is
    checked first, in the words its refusals have always used)."""
    if not isinstance(metadata, dict):
        raise ModelBundleError(f"{path}: not a JSON object")
    missing = [k for k in ("sha256", "threshold", "featurize", "input_schema") if k not in metadata]
    if missing:
        raise ModelBundleError(f"{path}: lacks key(s) {missing}")
    threshold = metadata["threshold"]
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or not 0.0 <= threshold <= 1.0
    ):
        raise ModelBundleError(
            f"{path}: threshold must be a finite number in [0, 1], got {threshold!r}"
        )
    schema = metadata["input_schema"]
    if not isinstance(schema, list):
        raise ModelBundleError(f"{path}: input_schema must be a list, got {schema!r:.60}")
    if not isinstance(metadata["sha256"], str) or not isinstance(metadata["featurize"], dict):
        raise ModelBundleError(f"{path}: sha256 must be a string and featurize an object")
    try:
        return ModelMetadata.parse(metadata, path)
    except DataFileError as exc:
        raise ModelBundleError(str(exc)) from None


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


def provenance_path(model_dir: Path | str) -> Path:
    """Where the sidecar of ``model_dir`` lives: beside it, never inside it."""
    model_dir = Path(model_dir)
    return model_dir.with_name(model_dir.name + PROVENANCE_SUFFIX)


def write_provenance(model_dir: Path, provenance: Provenance) -> None:
    write_json(provenance_path(model_dir), provenance.model_dump())


def read_provenance(model_dir: Path | str, sha256: str) -> Provenance | None:
    """The sidecar of ``model_dir`` if it describes the model with ``sha256``, else None.

    A sidecar left behind by another model (or unreadable) is ignored rather than reported as
    this model's provenance.
    """
    path = provenance_path(model_dir)
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
        try:
            tables[name] = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise ModelBundleError(
                f"{path}: not a readable parquet table: {_first_line(exc)}"
            ) from None
    return Context.from_tables(tables)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def load_pipeline(model_dir: Path, metadata: ModelMetadata) -> Pipeline:
    """model.skops after checking its sha256 against model.json; only TRUSTED_TYPES load."""
    import skops.io as sio
    from sklearn.pipeline import Pipeline

    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise ModelBundleError(f"{path}: model file not found")
    expected = metadata.sha256
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
    except Exception as exc:  # BadZipFile, KeyError, JSONDecodeError...: not a skops file we wrote
        raise ModelBundleError(f"{path}: not a readable skops model: {_first_line(exc)}") from None
    if not isinstance(pipeline, Pipeline):
        raise ModelBundleError(f"{path}: holds a {type(pipeline).__name__}, not a Pipeline")
    return pipeline


def load_model_bundle(model_dir: Path | str, require_manifest: bool = False) -> ModelBundle:
    """(pipeline, metadata, context) of a model directory, verified; raise ModelBundleError.

    The manifest is verified whenever it is present, and must be with ``require_manifest``
    (the service); without it, model directories of commits older than the manifest (baselines
    that compare, monitor and report rebuild) still load, checked by model.skops' sha256."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelBundleError(f"{model_dir}: model directory not found (run `dvc repro train`)")
    if require_manifest or (model_dir / MANIFEST_FILE).exists():
        listed = verify_manifest(model_dir)
        needed = [
            METADATA_FILE,
            MODEL_FILE,
            *(f"{CONTEXT_DIR}/{t}.parquet" for t in Context.TABLES),
        ]
        unlisted = [name for name in needed if name not in listed]
        if unlisted:
            raise ModelBundleError(
                f"{model_dir / unlisted[0]}: not listed in {model_dir / MANIFEST_FILE}; "
                "refusing to read a file the manifest does not vouch for"
            )
    metadata = read_metadata(model_dir)
    pipeline = load_pipeline(model_dir, metadata)
    return ModelBundle(pipeline, metadata, read_context(model_dir / CONTEXT_DIR))

"""The pipeline's JSON outputs as types: each is read and written through its model here, so a
missing, misspelt or mistyped key fails where the file is read, naming the file and the key,
instead of turning into a default downstream.

:class:`Output` is the shared base (frozen; unknown keys refused; ``to_json`` gives back exactly
the keys that were set, so a file read and written again is the same bytes). The models here:
model.json (:class:`ModelMetadata`, read and written by :mod:`flightdelay.core.model_io`), the
validation summary, evaluate.json, backtest.json, slices.json, importance.json and the release's
release.json (:class:`Release`, written by :mod:`flightdelay.loop.release`). drift.json's
(:mod:`flightdelay.core.drift_summary`) builds on the same base.

A number field keeps the type the stage writes (``n`` is a float in evaluate.json, an int in a
slice too small to measure), so reading and writing again never turns 12345 into 12345.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from flightdelay.core.io import DataFileError, read_json, write_json
from flightdelay.core.params import FeaturizeParams, TrainParams


class Output(BaseModel):
    """A JSON output; ``what`` names it in errors, ``dvc_stage`` is the DVC stage that rewrites it
    (none for release.json: ``flightdelay release`` writes it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    what: ClassVar[str] = "output"
    dvc_stage: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON payload: the keys that were set, as the stage wrote them."""
        return self.model_dump(exclude_unset=True)

    @classmethod
    def parse(cls, raw: Any, source: str | Path) -> Self:
        """``raw`` (the file's content) as this type; DataFileError names the file and key."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()
            )
            hint = f"; re-run `dvc repro {cls.dvc_stage}`" if cls.dvc_stage else ""
            raise DataFileError(f"{source}: not a valid {cls.what} ({problems}){hint}") from None

    @classmethod
    def read(cls, path: Path) -> Self:
        return cls.parse(read_json(path, cls.what), path)

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())


class EvaluateMetrics(Output):
    """evaluate.json: the model on the evaluation month at the training threshold.

    The ranking and probability metrics need both classes in the month, so they may be absent.
    """

    what: ClassVar[str] = "evaluation metrics file"
    dvc_stage: ClassVar[str] = "evaluate"

    eval_month: str
    threshold: float
    n: float  # a float in the file since the first release: kept, so the bytes do not move
    late_share: float
    baseline_accuracy: float  # of always predicting the training months' majority class
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None = None
    pr_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None

    def metric(self, name: str) -> float | None:
        """A metric by the name a rule or a table gives (None where the month lacks it)."""
        if name not in type(self).model_fields or name == "eval_month":
            raise KeyError(name)
        value = getattr(self, name)
        return None if value is None else float(value)


# ---------------------------------------------------------------- model.json


class InputColumn(Output):
    name: str
    dtype: str  # "string" (categorical) or "float64"


class ModelMetadata(Output):
    """model.json: what code, params and data determined of a trained model (never a run id,
    commit or clock: those are in the provenance sidecar). :mod:`flightdelay.core.model_io` reads
    and writes it; the loop and the card read other revisions' through this type too."""

    what: ClassVar[str] = "model metadata"
    dvc_stage: ClassVar[str] = "train"

    sha256: str  # of model.skops
    threshold: float
    input_schema: tuple[InputColumn, ...]
    target: str
    featurize: FeaturizeParams  # build the features with exactly these (serving too)
    train: TrainParams
    train_months: tuple[str, ...]
    eval_month: str
    train_metrics: dict[str, float]
    data_md5: str
    trusted_types: tuple[str, ...]
    # In the model.json of commits before f11b048 (now in the sidecar): read, never written.
    git_commit: str | None = None
    mlflow_run_id: str | None = None
    # Not written by train: a model directory made otherwise may name its model (serving's
    # /version shows it).
    name: str | None = None

    @property
    def columns(self) -> list[str]:
        """The input columns, in the order the pipeline takes them."""
        return [c.name for c in self.input_schema]


# ---------------------------------------------------------------- backtest.json


class BacktestScores(Output):
    """One backtest month's numbers (the ranking ones need both classes in the month)."""

    n: float
    late_share: float
    roc_auc: float | None = None
    pr_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None


class BacktestMonth(BacktestScores):
    """A model fitted on every earlier month (``train_months``), scored on ``month``."""

    month: str
    train_months: tuple[str, ...]

    def scores(self) -> BacktestScores:
        return BacktestScores.model_validate(
            self.model_dump(exclude_unset=True, exclude={"month", "train_months"})
        )


class Backtest(Output):
    """backtest.json: ``months`` is what code reads (drift, card); ``by_month`` holds the same
    numbers keyed by month, because `dvc metrics show/diff` flattens mappings but skips lists."""

    what: ClassVar[str] = "backtest metrics file"
    dvc_stage: ClassVar[str] = "evaluate"

    months: tuple[BacktestMonth, ...]
    by_month: dict[str, BacktestScores]

    @classmethod
    def of(cls, months: Sequence[BacktestMonth]) -> Backtest:
        return cls(months=tuple(months), by_month={m.month: m.scores() for m in months})

    @model_validator(mode="after")
    def _by_month_repeats_months(self) -> Backtest:
        expected = {m.month: m.scores().to_json() for m in self.months}
        if {k: v.to_json() for k, v in self.by_month.items()} != expected:
            raise ValueError("by_month must hold the numbers of months, keyed by month")
        return self


# ---------------------------------------------------------------- slices.json

_THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1")


class SliceMetrics(Output):
    """One slice's numbers; a slice smaller than ``evaluate.min_slice_rows`` has ``n`` only."""

    n: int | float  # an int for a slice with n only, a float otherwise: as the stage writes it
    late_share: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None  # these four: only when the slice has both classes
    pr_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None

    #: The slice column whose value names the slice (``carrier``, ``origin``).
    column: ClassVar[str] = ""

    @property
    def value(self) -> str:
        """The slice's value of its column ("UA", "EWR")."""
        return str(getattr(self, self.column))

    @property
    def measured(self) -> bool:
        """Whether the slice was large enough to measure (more than ``n``)."""
        return self.late_share is not None

    def metric(self, name: str) -> float | None:
        """A metric by name (None where the slice lacks it: too small, or one class only)."""
        if name not in type(self).model_fields or name == self.column:
            raise KeyError(name)
        value = getattr(self, name)
        return None if value is None else float(value)

    @model_validator(mode="after")
    def _measured_has_every_threshold_metric(self) -> SliceMetrics:
        measured = [getattr(self, k) is not None for k in ("late_share", *_THRESHOLD_METRICS)]
        if any(measured) and not all(measured):
            raise ValueError("a measured slice needs late_share, " + ", ".join(_THRESHOLD_METRICS))
        return self


class CarrierSlice(SliceMetrics):
    column: ClassVar[str] = "carrier"
    carrier: str


class OriginSlice(SliceMetrics):
    column: ClassVar[str] = "origin"
    origin: str


class Slices(Output):
    """slices.json: the evaluation month per carrier and per origin, largest slices first."""

    what: ClassVar[str] = "slice metrics file"
    dvc_stage: ClassVar[str] = "evaluate"

    carrier: tuple[CarrierSlice, ...]
    origin: tuple[OriginSlice, ...]

    #: The slice columns, in the order the file holds them.
    COLUMNS: ClassVar[tuple[str, ...]] = ("carrier", "origin")

    def column(self, name: str) -> tuple[SliceMetrics, ...]:
        """The slices of one column (``carrier``, ``origin``)."""
        if name not in self.COLUMNS:
            raise KeyError(name)
        slices: tuple[SliceMetrics, ...] = getattr(self, name)
        return slices

    def by_column(self) -> dict[str, tuple[SliceMetrics, ...]]:
        return {name: self.column(name) for name in self.COLUMNS}


# ---------------------------------------------------------------- importance.json


class FeatureImportance(Output):
    feature: str
    importance: float  # mean drop of ROC AUC when the feature is permuted
    std: float


class Importance(Output):
    """importance.json: permutation importance on the evaluation month, largest first."""

    what: ClassVar[str] = "permutation importance file"
    dvc_stage: ClassVar[str] = "evaluate"

    features: tuple[FeatureImportance, ...]


# ---------------------------------------------------------------- validation summary.json


class CheckCount(Output):
    checks: int
    failed: int


class ValidationFailure(Output):
    """One failed check (``flightdelay.pipeline.validate_gx.Failure``)."""

    table: str
    group: str
    expectation: str
    column: str | None
    batches: dict[str, int]  # batch -> offending rows (0 when the check is about the table)
    detail: str
    examples: tuple[Any, ...] = ()


class ValidationSummary(Output):
    """The validation summary: passed or not, what was checked, every failure."""

    what: ClassVar[str] = "validation summary"
    dvc_stage: ClassVar[str] = "validate"

    success: bool
    batches: dict[str, tuple[str, ...]]  # table -> batch names
    rows: dict[str, int]  # table -> rows checked
    groups: dict[str, dict[str, CheckCount]]  # table -> group -> counts
    skipped_from_row_checks: dict[str, tuple[str, ...]]  # table -> unreadable batches
    failures: tuple[ValidationFailure, ...]

    @model_validator(mode="after")
    def _success_means_no_failure(self) -> ValidationSummary:
        if self.success == bool(self.failures):
            raise ValueError("success must be true exactly when there is no failure")
        return self


# ---------------------------------------------------------------- release.json


class Release(Output):
    """release.json: one stage assignment being released (what deploy, canary, shadow and the
    MLflow alias read). Written by :mod:`flightdelay.loop.release` with every key, None included."""

    what: ClassVar[str] = "release description"

    artifact: str
    version: str  # vX.Y.Z
    stage: str  # staging | prod (also the GitHub environment)
    tag: str  # the assignment tag, e.g. flight-delay#prod#4
    version_tag: str  # the registration tag, e.g. flight-delay@v0.2.0
    commit: str
    model_path: str
    model_md5: str
    data_md5: str | None = None
    mlflow_run_id: str | None = None
    signature: dict[str, Any] | None = None  # signing.SignatureInfo, None when unsigned
    unsigned_override: str | None = None  # the operator's reason for releasing it unsigned

    def to_json(self) -> dict[str, Any]:
        """Every key, unset ones as null: release.json has always held them all."""
        return self.model_dump()

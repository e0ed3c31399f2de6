"""drift.json as a type: the drift stage writes it through :class:`DriftSummary` and every reader
(the card, the pull-request report, the monitor) reads it through it, so a missing or misspelt key
fails where the file is read, naming it, instead of printing a default downstream.

Fields another revision's drift.json may lack (it was written before they existed) are optional;
the rest are required. ``DriftSummary.to_json`` (core/outputs) gives back exactly the keys that
were set, so a summary read and written again is the same bytes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from flightdelay.core.outputs import Output

#: The drift directory's files (the drift stage's and the monitor's): this summary, and the
#: per-feature table formatted for a markdown table.
DRIFT_JSON = "drift.json"
TABLE_JSON = "features.json"


class ColumnNote(Output):
    column: str
    message: str


class Exclusion(Output):
    column: str
    reason: str


class DatasetSummary(Output):
    """Per-feature drift summed up: the share of drifted features against the threshold."""

    drifted: bool
    share_drifted: float
    n_drifted: int
    n_features: int
    drift_share_threshold: float
    n_reference_rows: int
    n_current_rows: int
    drifted_features: tuple[str, ...]
    not_tested: tuple[ColumnNote, ...] = ()
    excluded: tuple[Exclusion, ...] = ()
    problems: tuple[ColumnNote, ...] = ()


class ColumnTest(Output):
    """One column's drift test (the label, the scores); unavailable when it was not run."""

    available: bool
    drifted: bool
    method: str | None = None
    score: float | None = None
    threshold: float | None = None
    psi: float | None = None
    message: str = ""


class LabelDrift(ColumnTest):
    reference_late_rate: float
    current_late_rate: float


class PredictionDrift(ColumnTest):
    reference_mean_score: float | None = None
    current_mean_score: float | None = None
    reference: str | None = None  # what the scores were compared with, in words
    reference_source: Literal["backtest", "in_sample"] | None = None
    reference_score_months: tuple[str, ...] | None = None
    n_reference_scores: int | None = None


class PerformanceDrift(Output):
    """The newest month's metric against the earlier backtest months."""

    metric: str
    higher_is_better: bool
    max_drop: float
    by_month: dict[str, float]
    available: bool
    drifted: bool
    message: str
    current: float | None = None  # these four: only when available
    backtest_mean: float | None = None
    backtest_worst: float | None = None
    drop_below_worst: float | None = None

    @model_validator(mode="after")
    def _assessed_has_its_numbers(self) -> PerformanceDrift:
        if self.available and None in (self.current, self.backtest_worst, self.drop_below_worst):
            raise ValueError("an available performance check needs current, backtest_worst and "
                             "drop_below_worst")  # fmt: skip
        if self.drifted and not self.available:
            raise ValueError("performance drift cannot be flagged when it was not assessed")
        return self

    def measured(self) -> tuple[float, float, float]:
        """(metric of the newest month, of the worst earlier month, the drop below it) of an
        available check."""
        if self.current is None or self.backtest_worst is None or self.drop_below_worst is None:
            raise ValueError(f"performance drift not assessed: {self.message}")
        return self.current, self.backtest_worst, self.drop_below_worst


class DriftSummary(Output):
    """drift.json: the batch against the training months, feature, label, score and metric."""

    what: ClassVar[str] = "drift summary"
    dvc_stage: ClassVar[str] = "drift"

    current_month: str
    reference_months: tuple[str, ...]
    dataset: DatasetSummary
    label: LabelDrift
    prediction: PredictionDrift
    performance: PerformanceDrift
    any_drift: bool

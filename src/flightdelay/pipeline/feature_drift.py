"""Drift decisions per feature and for the dataset: :func:`column_drift` (one feature, Evidently's
default test unless params override it; reused by the canary, shadow and monitor) and
:func:`dataset_drift` (every declared feature, the share of drifted ones against
``drift.drift_share``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import pandas as pd

from flightdelay.core.params import DriftParams
from flightdelay.pipeline.stattests import (
    KINDS,
    SCORERS,
    STAT_TESTS,
    DriftError,
    Kind,
    default_method,
    prepare,
    psi,
)

Status = Literal["ok", "missing_current", "empty_current", "missing_reference", "empty_reference"]
MAX_NEW_CATEGORIES = 10  # listed per column in the report


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one feature. ``score`` is a distance or a p-value (see ``method``)."""

    column: str
    kind: Kind
    status: Status
    drifted: bool
    method: str | None = None
    threshold: float | None = None
    score: float | None = None
    psi: float | None = None
    n_reference: int = 0
    n_current: int = 0
    n_unique: int = 0
    null_share_reference: float | None = None
    null_share_current: float | None = None
    new_categories: tuple[str, ...] = ()
    message: str = ""

    @property
    def counted(self) -> bool:
        """Whether the column counts towards the share of drifted features."""
        return self.status in {"ok", "missing_current", "empty_current"}

    def rule(self) -> str:
        if self.method is None or self.threshold is None:
            return ""
        return f"{self.method} {STAT_TESTS[self.method].drift_when} {self.threshold:g}"


def column_drift(
    reference: pd.Series,
    current: pd.Series,
    column: str,
    kind: Kind,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Drift of one feature: Evidently's default test unless ``method`` is given."""
    if kind not in KINDS:
        raise DriftError(f"column {column!r}: kind must be one of {KINDS}, got {kind!r}")
    null_ref = float(reference.isna().mean()) if len(reference) else None
    null_cur = float(current.isna().mean()) if len(current) else None
    col = prepare(reference, current, column, kind)
    base = ColumnDrift(
        column=column,
        kind=kind,
        status="ok",
        drifted=False,
        n_reference=col.n_ref,
        n_current=col.n_cur,
        null_share_reference=null_ref,
        null_share_current=null_cur,
    )
    if col.n_ref == 0:
        return replace(
            base,
            status="empty_reference",
            message=f"{column!r} has no non-null value in the reference data: not tested",
        )
    if col.n_cur == 0:
        return replace(
            base,
            status="empty_current",
            drifted=True,
            message=f"{column!r} has no non-null value in the current batch (counted as drifted)",
        )
    chosen = method or default_method(kind, col.n_ref, col.n_unique)
    test = STAT_TESTS.get(chosen)
    if test is None:
        raise DriftError(f"column {column!r}: unknown drift method {chosen!r} ({list(STAT_TESTS)})")
    if method is not None and kind not in test.kinds:
        raise DriftError(
            f"column {column!r}: method {method!r} does not apply to a {kind} column "
            f"(it applies to {sorted(test.kinds)})"
        )
    actual_threshold = test.default_threshold if threshold is None else threshold
    score = SCORERS[chosen](col)
    new = col.keys[(col.ref_counts == 0) & (col.cur_counts > 0)] if kind == "categorical" else ()
    message = ""
    if len(new):
        shown = ", ".join(map(str, new[:MAX_NEW_CATEGORIES]))
        more = f" and {len(new) - MAX_NEW_CATEGORIES} more" if len(new) > MAX_NEW_CATEGORIES else ""
        noun = "category" if len(new) == 1 else "categories"
        message = f"{len(new)} {noun} never seen in the reference: {shown}{more}"
    return replace(
        base,
        drifted=bool(test.drifted(score, actual_threshold)),
        method=chosen,
        threshold=actual_threshold,
        score=score,
        psi=psi(col),
        n_unique=col.n_unique,
        new_categories=tuple(str(v) for v in new[:MAX_NEW_CATEGORIES]),
        message=message,
    )


@dataclass(frozen=True)
class DatasetDrift:
    """Per-feature drift and the dataset-level decision."""

    columns: tuple[ColumnDrift, ...]
    excluded: Mapping[str, str]  # column -> why it was not tested
    drift_share: float  # threshold on the share of drifted features
    n_reference_rows: int
    n_current_rows: int

    @property
    def counted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.counted]

    @property
    def n_drifted(self) -> int:
        return sum(c.drifted for c in self.counted)

    @property
    def share_drifted(self) -> float:
        return self.n_drifted / len(self.counted)

    @property
    def drifted(self) -> bool:
        return self.share_drifted >= self.drift_share

    def summary(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "n_drifted": self.n_drifted,
            "n_features": len(self.counted),
            "drift_share_threshold": self.drift_share,
            "n_reference_rows": self.n_reference_rows,
            "n_current_rows": self.n_current_rows,
            "drifted_features": [c.column for c in self.counted if c.drifted],
            # Lists, so `dvc metrics show/diff` keeps to the numbers and decisions above.
            "not_tested": [
                {"column": c.column, "message": c.message} for c in self.columns if not c.counted
            ],
            "excluded": [{"column": c, "reason": why} for c, why in self.excluded.items()],
            "problems": [
                {"column": c.column, "message": c.message} for c in self.columns if c.message
            ],
        }

    def table(self) -> pd.DataFrame:
        """One row per feature, most drifted first (drifted, then by score relative to rule)."""
        rows = [
            {**asdict(c), "rule": c.rule(), "new_categories": ", ".join(c.new_categories)}
            for c in self.columns
        ]
        frame = pd.DataFrame(rows)
        frame["severity"] = [severity(c) for c in self.columns]
        return frame.sort_values(["severity", "column"], ascending=[False, True], ignore_index=True)


def severity(col: ColumnDrift) -> float:
    """Score as a multiple of its threshold (p-values inverted), to rank features across tests:
    > 1 means drifted. Columns lost in the current batch rank first."""
    if col.status in {"missing_current", "empty_current"}:
        return math.inf
    if col.score is None or col.threshold is None or col.method is None:
        return 0.0
    if STAT_TESTS[col.method].score == "distance":
        return col.score / col.threshold
    return col.threshold / max(col.score, 1e-300)


def dataset_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, Kind],
    params: DriftParams,
) -> DatasetDrift:
    """Drift of every declared feature of ``current`` against ``reference``.

    ``kinds`` declares each feature numeric or categorical; ``params`` gives the dataset
    threshold, calendar exclusions and per-column method/threshold overrides.
    """
    if reference.empty:
        raise DriftError("the reference data has no rows: nothing to compare the batch with")
    if current.empty:
        raise DriftError("the current batch has no rows: nothing to compare")
    for key, names in (("columns", params.columns), ("calendar_columns", params.calendar_columns)):
        unknown = sorted(set(names) - set(kinds))
        if unknown:
            raise DriftError(
                f"drift.{key} names {unknown}, which are not features (features: {sorted(kinds)})"
            )
    both = sorted(set(params.columns) & set(params.calendar_columns))
    if both:
        raise DriftError(f"drift.columns overrides {both}, which drift.calendar_columns excludes")
    excluded = dict.fromkeys(
        params.calendar_columns, "calendar column: differs between months by construction"
    )
    results = []
    for column, kind in kinds.items():
        if column in excluded:
            continue
        override = params.columns.get(column)
        method = override.method if override else None
        threshold = override.threshold if override else None
        if column not in reference.columns:
            results.append(
                ColumnDrift(
                    column=column,
                    kind=kind,
                    status="missing_reference",
                    drifted=False,
                    message=f"{column!r} is missing from the reference data: not tested",
                )
            )
        elif column not in current.columns:
            results.append(
                ColumnDrift(
                    column=column,
                    kind=kind,
                    status="missing_current",
                    drifted=True,
                    message=f"{column!r} is missing from the current batch (counted as drifted)",
                )
            )
        else:
            results.append(
                column_drift(reference[column], current[column], column, kind, method, threshold)
            )
    if not any(r.counted for r in results):
        raise DriftError(
            "no feature could be compared: "
            + ("; ".join(r.message for r in results) or "every feature is excluded")
        )
    return DatasetDrift(tuple(results), excluded, params.drift_share, len(reference), len(current))

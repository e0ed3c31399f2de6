"""Drift stage: how far the newest batch (current) has moved from the training data (reference).

Per-feature drift uses the default rules of Evidently's ``DataDriftPreset`` (0.7), mirrored from
its source so the numbers are comparable with any team that uses it (``benchmarks/drift.py``
checks agreement column by column):

* reference above 1,000 non-null rows: normalised Wasserstein distance (W1 / std of the
  reference, std floored at 0.001) for numeric columns with more than 5 distinct values,
  Jensen-Shannon distance (natural log) for categorical and low-cardinality numeric ones; drift
  when the distance is >= 0.1;
* smaller references: two-sample Kolmogorov-Smirnov for numeric columns with more than 5
  values, chi-square for more than 2 values, a two-proportion Z-test for 2 or fewer; drift when
  p < 0.05 (KS: p <= 0.05);
* nulls and infinities are dropped before testing; "distinct values" counts both samples.

PSI is reported beside every column (Evidently's binning). Columns whose distribution differs
between months by construction (calendar columns) are excluded and listed as such.

Dataset drift: share of drifted features >= ``drift.drift_share``. Prediction drift compares
score distributions: the current month's against the out-of-sample scores of the backtest months
before it (each scored by a model trained on the months before that month), or, when no backtest
month is earlier, against the model's in-sample scores of its training rows (more spread out, so
drift is more readily flagged; drift.json says which). Label drift compares the late rate,
performance drift the metric of the newest month against the backtest months.
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from flightdelay.core.params import DriftParams

Kind = Literal["numeric", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical")

# Evidently's thresholds between its default tests (legacy/calculations/stattests/registry.py).
LARGE_REFERENCE_ROWS = 1000  # reference above this: distances, else p-values
LOW_CARDINALITY = 5  # numeric with at most this many distinct values: treated like categorical
BINARY_CARDINALITY = 2  # at most this many values: Z-test instead of chi-square
HISTOGRAM_CARDINALITY = 20  # numeric reference above this many values: Sturges bins for JS/PSI
INTEGER_CARDINALITY_LIMIT = 10  # Evidently's type inference: int with <= 10 values is categorical
MIN_STD = 0.001  # floor of the Wasserstein normaliser


class DriftError(ValueError):
    """The drift stage cannot compare the data it was given; the message says what and where."""


@dataclass(frozen=True)
class StatTest:
    name: str
    kinds: frozenset[str]
    default_threshold: float
    drift_when: Literal[">=", "<=", "<"]  # how score and threshold decide "drifted"
    score: Literal["distance", "p-value"]

    def drifted(self, score: float, threshold: float) -> bool:
        if self.drift_when == ">=":
            return score >= threshold
        if self.drift_when == "<=":
            return score <= threshold
        return score < threshold


STAT_TESTS: dict[str, StatTest] = {
    t.name: t
    for t in (
        StatTest("wasserstein", frozenset({"numeric"}), 0.1, ">=", "distance"),
        StatTest("jensenshannon", frozenset(KINDS), 0.1, ">=", "distance"),
        StatTest("psi", frozenset(KINDS), 0.1, ">=", "distance"),
        StatTest("ks", frozenset({"numeric"}), 0.05, "<=", "p-value"),
        StatTest("chisquare", frozenset({"categorical"}), 0.05, "<", "p-value"),
        StatTest("z", frozenset({"categorical"}), 0.05, "<", "p-value"),
    )
}


# ---------------------------------------------------------------- per-column statistics


@dataclass(frozen=True)
class _Column:
    """One feature of both samples, nulls dropped, reduced to what every test needs.

    ``keys`` are the distinct values of both samples (sorted for numeric columns) and
    ``ref_counts``/``cur_counts`` their counts; numeric columns also keep the sorted samples.
    """

    kind: Kind
    keys: np.ndarray
    n_ref: int
    n_cur: int
    n_unique_ref: int
    ref_sorted: np.ndarray | None = None
    cur_sorted: np.ndarray | None = None
    counts: tuple[np.ndarray, np.ndarray] | None = None  # categorical: counted when prepared

    @property
    def n_unique(self) -> int:
        return len(self.keys)

    @cached_property
    def ref_counts(self) -> np.ndarray:
        return self.counts[0] if self.counts is not None else _counts(self.ref_sorted, self.keys)

    @cached_property
    def cur_counts(self) -> np.ndarray:
        return self.counts[1] if self.counts is not None else _counts(self.cur_sorted, self.keys)


def _counts(sorted_values: np.ndarray | None, keys: np.ndarray) -> np.ndarray:
    assert sorted_values is not None
    return np.searchsorted(sorted_values, keys, "right") - np.searchsorted(sorted_values, keys)


def _histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` of already sorted values, without sorting them again
    (numpy sorts for explicit edges); the last bin is closed, as numpy's."""
    left = np.searchsorted(sorted_values, edges[:-1], "left")
    right = np.searchsorted(sorted_values, edges[-1:], "right")
    return np.diff(np.concatenate([left, right]))


def _not_null(series: pd.Series) -> pd.Series:
    """Evidently drops nulls and +-inf before testing."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        return series[np.isfinite(values)]
    return series[series.notna()]


def _numeric_values(series: pd.Series, column: str, which: str) -> np.ndarray:
    """Finite values, sorted."""
    if not pd.api.types.is_numeric_dtype(series):
        raise DriftError(
            f"column {column!r} is declared numeric but the {which} data has dtype {series.dtype}"
        )
    if isinstance(series.dtype, np.dtype):  # numpy-backed: NaN is already the null, no copy
        values = np.asarray(series, dtype="float64")
    else:  # nullable or Arrow-backed numbers
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    finite.sort()
    return finite


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts, in a sorted array."""
    starts = np.empty(sorted_values.size, dtype=bool)
    starts[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=starts[1:])
    return starts


def _prepare(reference: pd.Series, current: pd.Series, column: str, kind: Kind) -> _Column:
    if kind == "numeric":
        ref = _numeric_values(reference, column, "reference")
        cur = _numeric_values(current, column, "current")
        merged = np.concatenate([ref, cur])
        merged.sort(kind="stable")  # two sorted runs: merged in linear time
        keys = merged[_distinct(merged)]
        n_unique_ref = int(np.count_nonzero(_distinct(ref)))
        return _Column(kind, keys, ref.size, cur.size, n_unique_ref, ref, cur)
    ref_s, cur_s = _not_null(reference), _not_null(current)
    codes, uniques = pd.factorize(pd.concat([ref_s, cur_s], ignore_index=True), sort=False)
    keys = np.asarray(uniques, dtype=object)
    ref_counts = np.bincount(codes[: len(ref_s)], minlength=len(keys))
    cur_counts = np.bincount(codes[len(ref_s) :], minlength=len(keys))
    return _Column(
        kind,
        keys,
        len(ref_s),
        len(cur_s),
        int(np.count_nonzero(ref_counts)),
        counts=(ref_counts, cur_counts),
    )


def _wasserstein_norm(col: _Column) -> float:
    """W1 = integral of |F_ref - F_cur|, over the merged distinct values, / std of the reference."""
    assert col.ref_sorted is not None
    assert col.cur_sorted is not None
    ref, cur, keys = col.ref_sorted, col.cur_sorted, col.keys
    deltas = np.diff(keys)
    f_ref = np.searchsorted(ref, keys[:-1], "right") / ref.size
    f_cur = np.searchsorted(cur, keys[:-1], "right") / cur.size
    w1 = float(np.sum(np.abs(f_ref - f_cur) * deltas))
    return w1 / max(float(np.std(ref)), MIN_STD)


def _binned(col: _Column, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bin as Evidently's ``get_binned_data``: Sturges bins over both samples for a
    numeric reference with more than 20 values, else one bin per distinct value."""
    if col.kind == "numeric" and col.n_unique_ref > HISTOGRAM_CARDINALITY:
        assert col.ref_sorted is not None
        assert col.cur_sorted is not None
        edges = np.histogram_bin_edges(
            np.concatenate([col.ref_sorted, col.cur_sorted]), bins="sturges"
        )
        ref_p = _histogram(col.ref_sorted, edges) / col.ref_sorted.size
        cur_p = _histogram(col.cur_sorted, edges) / col.cur_sorted.size
    else:
        ref_p = col.ref_counts / col.n_ref
        cur_p = col.cur_counts / col.n_cur
    if fill_zeroes:
        for shares in (ref_p, cur_p):
            smallest = shares[shares != 0].min()
            np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref_p, cur_p


def _jensenshannon(col: _Column) -> float:
    ref_p, cur_p = _binned(col, fill_zeroes=False)
    return float(distance.jensenshannon(ref_p, cur_p))


def _psi(col: _Column) -> float:
    ref_p, cur_p = _binned(col, fill_zeroes=True)
    return float(np.sum((ref_p - cur_p) * np.log(ref_p / cur_p)))


def _ks(col: _Column) -> float:
    assert col.ref_sorted is not None
    assert col.cur_sorted is not None
    return float(stats.ks_2samp(col.ref_sorted, col.cur_sorted).pvalue)


def _chisquare(col: _Column) -> float:
    expected = col.ref_counts * (col.n_cur / col.n_ref)
    # A category absent from the reference has expected count 0: statistic inf, p = 0 (drift).
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.chisquare(col.cur_counts, expected).pvalue)


def _first_in_sort_order(keys: np.ndarray) -> int:
    try:
        order = sorted(range(len(keys)), key=lambda i: keys[i])
    except TypeError:  # mixed types: order by text, still deterministic
        order = sorted(range(len(keys)), key=lambda i: str(keys[i]))
    return order[0]


def _z(col: _Column) -> float:
    """Two-proportion Z-test on "first value in sort order" versus the rest (Evidently's)."""
    same_constant = (
        col.n_unique_ref == 1
        and np.count_nonzero(col.cur_counts) == 1
        and np.flatnonzero(col.ref_counts)[0] == np.flatnonzero(col.cur_counts)[0]
    )
    if same_constant:
        return 1.0
    first = _first_in_sort_order(col.keys)
    n1, n2 = col.n_ref, col.n_cur
    p1 = float(n1 - col.ref_counts[first]) / n1
    p2 = float(n2 - col.cur_counts[first]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


_SCORERS = {
    "wasserstein": _wasserstein_norm,
    "jensenshannon": _jensenshannon,
    "psi": _psi,
    "ks": _ks,
    "chisquare": _chisquare,
    "z": _z,
}


def default_method(kind: Kind, n_reference: int, n_unique: int) -> str:
    """Evidently's default test for a column (``_get_default_stattest``).

    ``n_reference`` counts the non-null reference rows, ``n_unique`` the distinct values of both
    samples together.
    """
    if n_reference > LARGE_REFERENCE_ROWS:
        if kind == "numeric" and n_unique > LOW_CARDINALITY:
            return "wasserstein"
        return "jensenshannon"
    if kind == "numeric" and n_unique > LOW_CARDINALITY:
        return "ks"
    return "chisquare" if n_unique > BINARY_CARDINALITY else "z"


def declared_kinds() -> dict[str, Kind]:
    """The model's features and their kinds, as the feature code declares them."""
    from flightdelay.core.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    kinds: dict[str, Kind] = dict.fromkeys(CATEGORICAL_FEATURES, "categorical")
    kinds.update(dict.fromkeys(NUMERIC_FEATURES, "numeric"))
    return kinds


def infer_kind(series: pd.Series) -> Kind | None:
    """Evidently's column type inference (``infer_column_type``), for undeclared columns.

    float: numeric; int: categorical with at most 10 distinct values, else numeric; strings:
    categorical unless more than half the values are distinct (text: None, not tested);
    bool/category: categorical; anything else: None.
    """
    name = series.dtype.name
    if name.startswith("float"):
        return "numeric"
    if name.lower().startswith(("int", "uint")):
        return "categorical" if series.nunique() <= INTEGER_CARDINALITY_LIMIT else "numeric"
    first = series.dropna().iloc[0] if series.notna().any() else None
    is_text = name in {"string", "str"} or (name == "object" and isinstance(first, str))
    if is_text:
        return None if series.nunique() > series.count() * 0.5 else "categorical"
    if name in {"bool", "boolean", "category"}:
        return "categorical"
    return None


# ---------------------------------------------------------------- per-feature drift

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
    col = _prepare(reference, current, column, kind)
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
    score = _SCORERS[chosen](col)
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
        psi=_psi(col),
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


# ---------------------------------------------------------------- the stage

LABEL = "late"
SCORE = "score"
MONTH = "month"
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}
DISTRIBUTION_BINS = 30
DISTRIBUTION_CATEGORIES = 12  # most frequent categories shown; the rest pooled as "(other)"
NULL_LABEL = "(null)"


def performance_drift(
    backtest: Sequence[Mapping[str, Any]], current_month: str, metric: str, max_drop: float
) -> dict[str, Any]:
    """The newest month's metric against the earlier backtest months (each scored by a model
    trained on the months before it). Drift when it is worse than the worst of them by more than
    ``max_drop``; a defined "not available" result when the backtest lacks the months."""
    higher = HIGHER_IS_BETTER[metric]
    by_month = {str(m["month"]): m for m in backtest if metric in m}
    base: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": higher,
        "max_drop": max_drop,
        "by_month": {month: float(m[metric]) for month, m in sorted(by_month.items())},
    }
    earlier = [float(m[metric]) for month, m in by_month.items() if month < current_month]
    if current_month not in by_month or not earlier:
        missing = current_month if current_month not in by_month else "any earlier month"
        return {
            **base,
            "available": False,
            "drifted": False,
            "message": f"backtest has no {metric} for {missing}: performance drift not "
            "assessed (evaluate.backtest_months >= 2 gives it one)",
        }
    current = float(by_month[current_month][metric])
    worst = min(earlier) if higher else max(earlier)
    drop = (worst - current) if higher else (current - worst)
    return {
        **base,
        "available": True,
        "current": current,
        "backtest_mean": float(np.mean(earlier)),
        "backtest_worst": worst,
        "drop_below_worst": drop,
        "drifted": bool(drop > max_drop),
        "message": "",
    }


def late_rate_by_month(
    features: pd.DataFrame, reference_months: Sequence[str], current_month: str
) -> pd.DataFrame:
    """Flights and late share per month, each month marked reference/current/other."""
    grouped = features.groupby(MONTH, sort=True)[LABEL].agg(["size", "mean"]).reset_index()
    grouped.columns = pd.Index([MONTH, "flights", "late_rate"])
    grouped["role"] = [
        "current" if m == current_month else "reference" if m in reference_months else "other"
        for m in grouped[MONTH]
    ]
    return grouped


def distribution(reference: pd.Series, current: pd.Series, kind: Kind) -> pd.DataFrame:
    """Shares of both samples (columns ``bin``, ``reference``, ``current``) per bin: numeric,
    30 equal bins over the central 99% of both samples (outliers in the end bins); categorical,
    the 12 most frequent categories and the rest pooled as "(other)". Nulls get their own row."""
    n_ref, n_cur = max(len(reference), 1), max(len(current), 1)
    if kind == "numeric":
        ref = reference.to_numpy(dtype="float64", na_value=np.nan)
        cur = current.to_numpy(dtype="float64", na_value=np.nan)
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        both = np.concatenate([ref, cur])
        low, high = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, DISTRIBUTION_BINS + 1)
        table = pd.DataFrame(
            {
                "bin": [f"{e:.4g}" for e in edges[:-1]],
                "reference": np.histogram(np.clip(ref, low, high), edges)[0] / n_ref,
                "current": np.histogram(np.clip(cur, low, high), edges)[0] / n_cur,
            }
        )
    else:
        ref_counts = reference.value_counts()
        cur_counts = current.value_counts()
        total = ref_counts.add(cur_counts, fill_value=0).sort_values(ascending=False)
        top = list(total.index[:DISTRIBUTION_CATEGORIES])
        table = pd.DataFrame(
            {
                "bin": [str(k) for k in top],
                "reference": [ref_counts.get(k, 0) / n_ref for k in top],
                "current": [cur_counts.get(k, 0) / n_cur for k in top],
            }
        )
        if len(total) > len(top):
            rest = {
                "bin": "(other)",
                "reference": ref_counts[~ref_counts.index.isin(top)].sum() / n_ref,
                "current": cur_counts[~cur_counts.index.isin(top)].sum() / n_cur,
            }
            table = pd.concat([table, pd.DataFrame([rest])], ignore_index=True)
    if reference.isna().any() or current.isna().any():
        nulls = {
            "bin": NULL_LABEL,
            "reference": float(reference.isna().sum()) / n_ref,
            "current": float(current.isna().sum()) / n_cur,
        }
        table = pd.concat([table, pd.DataFrame([nulls])], ignore_index=True)
    return table


ScoreSource = Literal["backtest", "in_sample"]


@dataclass(frozen=True)
class ScoreReference:
    """The scores prediction drift compares the current month's with: out-of-sample backtest
    scores of earlier months, or the model's in-sample scores of its training rows."""

    source: ScoreSource
    months: tuple[str, ...]
    n: int
    why_in_sample: str = ""  # set when backtest scores were offered but none was earlier

    def describe(self) -> str:
        span = ", ".join(self.months)
        if self.source == "backtest":
            return (
                f"out-of-sample backtest scores of {span} (each month scored by a model trained "
                "on the months before it)"
            )
        text = "the model's scores on its training rows (in-sample)"
        return f"{text}: {self.why_in_sample}" if self.why_in_sample else text

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.describe(),
            "reference_source": self.source,
            "reference_score_months": list(self.months),
            "n_reference_scores": self.n,
        }


@dataclass(frozen=True)
class DriftReport:
    """Everything the drift stage reports; ``to_json`` is drift.json."""

    reference_months: tuple[str, ...]
    current_month: str
    features: DatasetDrift
    label: ColumnDrift
    label_rates: tuple[float, float]  # late rate of reference, current
    prediction: ColumnDrift | None
    score_means: tuple[float, float] | None
    performance: Mapping[str, Any]
    late_rates: pd.DataFrame = field(repr=False)
    distributions: Mapping[str, pd.DataFrame] = field(repr=False)  # most-drifted features
    score_distribution: pd.DataFrame | None = field(repr=False, default=None)
    score_reference: ScoreReference | None = None  # what the current scores were compared with

    def to_json(self) -> dict[str, Any]:
        def drift_of(c: ColumnDrift | None) -> dict[str, Any]:
            if c is None:
                return {"available": False, "drifted": False}
            return {
                "available": c.status == "ok",
                "drifted": c.drifted,
                "method": c.method,
                "score": c.score,
                "threshold": c.threshold,
                "psi": c.psi,
                "message": c.message,
            }

        prediction = drift_of(self.prediction)
        if self.score_means is not None:
            prediction |= {
                "reference_mean_score": self.score_means[0],
                "current_mean_score": self.score_means[1],
            }
        if self.score_reference is not None:
            prediction |= self.score_reference.to_json()
        return {
            "current_month": self.current_month,
            "reference_months": list(self.reference_months),
            "dataset": self.features.summary(),
            "label": drift_of(self.label)
            | {
                "reference_late_rate": self.label_rates[0],
                "current_late_rate": self.label_rates[1],
            },
            "prediction": prediction,
            "performance": dict(self.performance),
            "any_drift": bool(
                self.features.drifted
                or self.label.drifted
                or (self.prediction is not None and self.prediction.drifted)
                or self.performance.get("drifted", False)
            ),
        }

    def markdown_table(self) -> dict[str, Any]:
        """The per-feature table as header + formatted rows, ready to render as markdown."""
        header = [
            "feature",
            "kind",
            "test",
            "score",
            "threshold",
            "drift",
            "PSI",
            "null % ref/cur",
            "note",
        ]
        rows = []
        for _, r in self.features.table().iterrows():
            score = "" if pd.isna(r["score"]) else f"{r['score']:.4g}"
            psi = "" if pd.isna(r["psi"]) else f"{r['psi']:.3g}"
            nulls = "/".join(
                "" if pd.isna(v) else f"{100 * v:.1f}"
                for v in (r["null_share_reference"], r["null_share_current"])
            )
            rows.append(
                [
                    r["column"],
                    r["kind"],
                    r["method"] or r["status"],
                    score,
                    "" if pd.isna(r["threshold"]) else f"{r['threshold']:g}",
                    "yes" if r["drifted"] else "no",
                    psi,
                    nulls,
                    r["message"],
                ]
            )
        notes = [f"{column}: excluded ({why})" for column, why in self.features.excluded.items()]
        return {"header": header, "rows": rows, "notes": notes}


def drift(
    features: pd.DataFrame,
    predictions: pd.DataFrame,
    backtest: Sequence[Mapping[str, Any]],
    reference_months: Sequence[str],
    current_month: str,
    kinds: Mapping[str, Kind],
    params: DriftParams,
    score_reference: Callable[[pd.DataFrame], np.ndarray] | None = None,
    backtest_scores: pd.DataFrame | None = None,
) -> DriftReport:
    """The drift stage's core: the current month against the training months.

    ``predictions`` holds the current month's scores (column ``score``). Prediction drift compares
    them with ``backtest_scores`` (columns ``month``, ``score``: out-of-sample scores) of the
    months before the current one; without such rows, with the reference rows scored by
    ``score_reference`` (rows -> scores, in-sample); it is skipped when neither is given.
    """
    for column in (MONTH, LABEL):
        if column not in features.columns:
            raise DriftError(f"the feature table lacks the column {column!r}")
    present = set(features[MONTH].unique())
    missing = sorted(set(reference_months) - present)
    if missing:
        raise DriftError(f"the feature table has no rows for the reference month(s) {missing}")
    if not reference_months:
        raise DriftError("no reference months: the model was trained on no data")
    reference = features[features[MONTH].isin(list(reference_months))]
    current = features[features[MONTH] == current_month]
    if current.empty:
        raise DriftError(f"the current batch {current_month} has no rows: nothing to compare")
    result = dataset_drift(reference, current, kinds, params)

    label = column_drift(reference[LABEL], current[LABEL], LABEL, "categorical")
    rates = (float(reference[LABEL].mean()), float(current[LABEL].mean()))

    prediction = score_means = score_table = None
    score_ref: ScoreReference | None = None
    earlier = _earlier_scores(backtest_scores, current_month)
    if (earlier is not None and not earlier.empty) or score_reference is not None:
        if SCORE not in predictions.columns:
            raise DriftError(f"the predictions lack the column {SCORE!r}")
        if MONTH in predictions.columns and set(predictions[MONTH].unique()) != {current_month}:
            raise DriftError(
                f"the predictions are for {sorted(predictions[MONTH].unique())}, not the "
                f"current batch {current_month}: re-run `dvc repro evaluate`"
            )
        if earlier is not None and not earlier.empty:
            ref_scores = earlier[SCORE].astype("float64").reset_index(drop=True)
            score_ref = ScoreReference(
                "backtest", tuple(sorted(map(str, earlier[MONTH].unique()))), len(ref_scores)
            )
        else:
            assert score_reference is not None  # no earlier backtest scores: see the `if` above
            ref_scores = pd.Series(np.asarray(score_reference(reference), dtype="float64"))
            why = (
                f"no out-of-sample backtest month before {current_month} "
                "(evaluate.backtest_months >= 2 gives one)"
                if earlier is not None
                else ""
            )
            score_ref = ScoreReference("in_sample", tuple(reference_months), len(ref_scores), why)
        cur_scores = predictions[SCORE].astype("float64").reset_index(drop=True)
        prediction = column_drift(ref_scores, cur_scores, SCORE, "numeric")
        score_means = (float(ref_scores.mean()), float(cur_scores.mean()))
        score_table = distribution(ref_scores, cur_scores, "numeric")

    top = [c for c in result.table()["column"] if c not in result.excluded]
    top = [c for c in top if c in reference.columns and c in current.columns][: params.top_features]
    distributions = {c: distribution(reference[c], current[c], kinds[c]) for c in top}
    return DriftReport(
        reference_months=tuple(reference_months),
        current_month=current_month,
        features=result,
        label=label,
        label_rates=rates,
        prediction=prediction,
        score_means=score_means,
        performance=performance_drift(
            backtest, current_month, params.performance_metric, params.max_performance_drop
        ),
        late_rates=late_rate_by_month(features, reference_months, current_month),
        distributions=distributions,
        score_distribution=score_table,
        score_reference=score_ref,
    )


def _earlier_scores(
    backtest_scores: pd.DataFrame | None, current_month: str
) -> pd.DataFrame | None:
    """The rows of ``backtest_scores`` for months before ``current_month`` (None if not given)."""
    if backtest_scores is None:
        return None
    missing = [c for c in (MONTH, SCORE) if c not in backtest_scores.columns]
    if missing:
        raise DriftError(f"the backtest predictions lack the column(s) {missing}")
    return backtest_scores[backtest_scores[MONTH].astype(str) < current_month]


# ---------------------------------------------------------------- I/O edge

DRIFT_JSON = "drift.json"  # DVC metrics
TABLE_CSV = "features.csv"  # one row per feature
TABLE_JSON = "features.json"  # the same, formatted for a markdown table
PLOT_DATA = "plots"  # CSV files for `dvc plots`
PNG = "png"  # figures for the pull-request comment


def plot_data(report: DriftReport) -> dict[str, pd.DataFrame]:
    """The data behind every figure, one CSV each for `dvc plots`."""
    table = report.features.table()
    scores = table.loc[
        table["status"] == "ok", ["column", "method", "score", "threshold", "severity", "drifted"]
    ]
    performance = pd.DataFrame(
        [
            {
                "month": m,
                "metric": report.performance["metric"],
                "value": v,
                "role": "current" if m == report.current_month else "backtest",
            }
            for m, v in report.performance["by_month"].items()
        ],
        columns=["month", "metric", "value", "role"],
    )
    distributions = pd.concat(
        [d.assign(feature=c) for c, d in report.distributions.items()] or [pd.DataFrame()],
        ignore_index=True,
    )
    data = {
        "drift_scores": scores.rename(columns={"column": "feature"}),
        "late_rate": report.late_rates,
        "performance": performance,
        "distributions": distributions,
    }
    if report.score_distribution is not None:
        data["scores"] = report.score_distribution
    return data


def write_figures(report: DriftReport, directory: Path) -> list[Path]:
    """PNGs: most-drifted distributions, drift scores, late rate and metric by month, scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    ref_label = f"reference {report.reference_months[0]}..{report.reference_months[-1]}"
    cur_label = f"current {report.current_month}"

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(directory / name, dpi=100)
        plt.close(fig)
        written.append(directory / name)

    def overlay(ax: Any, frame: pd.DataFrame, title: str, reference: str = ref_label) -> None:
        x = np.arange(len(frame))
        ax.bar(x - 0.2, frame["reference"], width=0.4, label=reference, color="tab:blue")
        ax.bar(x + 0.2, frame["current"], width=0.4, label=cur_label, color="tab:orange")
        step = max(1, len(frame) // 8)
        ax.set_xticks(x[::step], frame["bin"].iloc[::step], rotation=45, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("share")

    # Overlaid distributions of the most-drifted features.
    by_column = {c.column: c for c in report.features.columns}
    if report.distributions:
        n = len(report.distributions)
        cols = min(3, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        for ax, (column, frame) in zip(axes.flat, report.distributions.items(), strict=False):
            c = by_column[column]
            score = "" if c.score is None else f" {c.method} {c.score:.3g}"
            overlay(ax, frame, f"{column}:{score}{' DRIFT' if c.drifted else ''}")
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=7)
        save(fig, "distributions.png")

    # Drift score per feature, as a multiple of its threshold (> 1: drifted).
    table = report.features.table()
    table = table[table["status"] == "ok"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.22 * len(table) + 1)))
    colors = ["tab:red" if d else "tab:grey" for d in table["drifted"]]
    ax.barh(table["column"], table["severity"].clip(upper=10), color=colors)
    ax.axvline(1.0, color="black", linestyle=":")
    ax.set(
        xlabel="drift score / threshold (p-value tests: threshold / p), capped at 10",
        title=f"feature drift {report.current_month}: {report.features.n_drifted}/"
        f"{len(report.features.counted)} drifted",
    )
    ax.tick_params(axis="y", labelsize=7)
    save(fig, "drift_scores.png")

    # Late rate by month.
    rates = report.late_rates
    fig, ax = plt.subplots(figsize=(6, 3.2))
    role_color = {"reference": "tab:blue", "current": "tab:orange", "other": "tab:grey"}
    ax.bar(rates[MONTH], rates["late_rate"], color=[role_color[r] for r in rates["role"]])
    ax.set(
        ylabel="late share",
        title=f"late rate by month (label drift: {'yes' if report.label.drifted else 'no'})",
    )
    ax.tick_params(axis="x", rotation=45)
    save(fig, "late_rate.png")

    # Metric by month: backtest months and the current one.
    perf = report.performance
    fig, ax = plt.subplots(figsize=(6, 3.2))
    months = list(perf["by_month"])
    values = list(perf["by_month"].values())
    ax.plot(months, values, marker="o", color="tab:blue")
    if report.current_month in perf["by_month"]:
        ax.plot([report.current_month], [perf["by_month"][report.current_month]], marker="o",
                color="tab:orange", linestyle="none", label=cur_label)  # fmt: skip
    if perf.get("available"):
        ax.axhline(perf["backtest_worst"], color="grey", linestyle=":", label="worst earlier")
    if months:
        ax.legend(fontsize=7)
    ax.set(
        ylabel=perf["metric"],
        title=f"{perf['metric']} by month (performance drift: "
        f"{'yes' if perf.get('drifted') else 'no' if perf.get('available') else 'n/a'})",
    )
    save(fig, "performance.png")

    if report.score_distribution is not None and report.prediction is not None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        p, r = report.prediction, report.score_reference
        overlay(
            ax,
            report.score_distribution,
            f"predicted late probability: {p.method} {p.score:.3g}{' DRIFT' if p.drifted else ''}",
            ref_label
            if r is None
            else f"{'backtest' if r.source == 'backtest' else 'in-sample'} "
            f"{r.months[0]}..{r.months[-1]}",
        )
        ax.legend(fontsize=7)
        save(fig, "scores.png")
    return written


def write_outputs(report: DriftReport, directory: Path) -> None:
    from flightdelay.core.io import write_json

    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / DRIFT_JSON, report.to_json())
    report.features.table().to_csv(directory / TABLE_CSV, index=False)
    write_json(directory / TABLE_JSON, report.markdown_table())
    (directory / PLOT_DATA).mkdir(exist_ok=True)
    for name, frame in plot_data(report).items():
        frame.to_csv(directory / PLOT_DATA / f"{name}.csv", index=False)
    write_figures(report, directory / PNG)


def read_parquet(path: Path, what: str) -> pd.DataFrame:
    from flightdelay.core.io import DataFileError

    if not path.is_file():
        raise DataFileError(f"{path}: {what} not found")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{path}: {what} is not a readable parquet file: {exc}") from None


def check_backtest_scores(
    scores: pd.DataFrame, backtest: Sequence[Mapping[str, Any]], current_month: str
) -> None:
    """The backtest predictions must hold exactly backtest.json's months before the current one
    (files from different runs of evaluate would compare unrelated scores)."""
    if MONTH not in scores.columns:
        raise DriftError(f"the backtest predictions lack the column {MONTH!r}")
    have = sorted(map(str, scores[MONTH].unique()))
    expected = sorted(str(m["month"]) for m in backtest if str(m.get("month")) < current_month)
    if have != expected:
        raise DriftError(
            f"the backtest predictions are for {have} but backtest.json has {expected} before "
            f"{current_month}: re-run `dvc repro evaluate`"
        )


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.io import DataFileError
    from flightdelay.core.stage import stage_main

    return stage_main("drift", __doc__, argv, run, (DataFileError, DriftError))


def run(params: Any, args: argparse.Namespace) -> int:
    from flightdelay.core.io import DataFileError, read_json

    paths = params.paths
    from flightdelay.core.model_io import load_model_bundle
    from flightdelay.pipeline.train import score

    bundle = load_model_bundle(paths.model)
    features = read_parquet(paths.features, "feature table (run `dvc repro featurize`)")
    predictions = read_parquet(paths.predictions, "predictions (run `dvc repro evaluate`)")
    backtest_scores = read_parquet(
        paths.backtest_predictions, "backtest predictions (run `dvc repro evaluate`)"
    )
    backtest = read_json(
        paths.metrics / "backtest.json", "backtest metrics (run `dvc repro evaluate`)"
    )
    if not isinstance(backtest, dict) or not isinstance(backtest.get("months"), list):
        raise DataFileError(f"{paths.metrics / 'backtest.json'}: expected {{'months': [...]}}")
    months = sorted(features[MONTH].unique()) if MONTH in features.columns else []
    current_month = str(bundle.metadata.get("eval_month"))
    if months and current_month != months[-1]:
        raise DriftError(
            f"the model was evaluated on {current_month} but the newest batch is "
            f"{months[-1]}: re-run `dvc repro train evaluate`"
        )
    check_backtest_scores(backtest_scores, backtest["months"], current_month)
    report = drift(
        features,
        predictions,
        backtest["months"],
        reference_months=list(bundle.metadata.get("train_months") or []),
        current_month=current_month,
        kinds=declared_kinds(),
        params=params.drift,
        score_reference=lambda rows: score(bundle.pipeline, rows),
        backtest_scores=backtest_scores,
    )
    write_outputs(report, paths.drift)
    summary = report.to_json()
    d, perf = summary["dataset"], summary["performance"]
    print(
        f"drift {report.current_month} vs {report.reference_months[0]}.."
        f"{report.reference_months[-1]}: {d['n_drifted']}/{d['n_features']} features drifted "
        f"(dataset drift: {'yes' if d['drifted'] else 'no'}), late rate "
        f"{report.label_rates[0]:.3f} -> {report.label_rates[1]:.3f}"
        + (
            f", mean score {report.score_means[0]:.3f} -> {report.score_means[1]:.3f}"
            f" ({report.score_reference.source} reference)"
            if report.score_means and report.score_reference
            else ""
        )
        + (
            f", {perf['metric']} {perf['current']:.4f} "
            f"(worst backtest {perf['backtest_worst']:.4f})"
            if perf.get("available")
            else ""
        )
        + f" -> {paths.drift}"
    )
    return 0

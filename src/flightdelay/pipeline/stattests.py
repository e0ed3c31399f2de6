"""Evidently's default per-column drift tests, mirrored: each test's score, and which test
Evidently picks for a column (``DataDriftPreset`` 0.7; ``benchmarks/drift.py`` checks agreement).

* reference above 1,000 non-null rows: normalised Wasserstein distance (W1 / std of the
  reference, std floored at 0.001) for numeric columns with more than 5 distinct values,
  Jensen-Shannon distance (natural log) for categorical and low-cardinality numeric ones; drift
  when the distance is >= 0.1;
* smaller references: two-sample Kolmogorov-Smirnov for numeric columns with more than 5
  values, chi-square for more than 2 values, a two-proportion Z-test for 2 or fewer; drift when
  p < 0.05 (KS: p <= 0.05);
* nulls and infinities are dropped before testing; "distinct values" counts both samples.

PSI (Evidently's binning) is computed beside every test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

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


def prepare(reference: pd.Series, current: pd.Series, column: str, kind: Kind) -> _Column:
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


def psi(col: _Column) -> float:
    ref_p, cur_p = _binned(col, fill_zeroes=True)
    # math.log and math.fsum rather than np.log and np.sum: numpy picks its SIMD log by CPU
    # (AVX-512 or not), and the last bit it gives differs, so the committed drift table came
    # out different on another machine (0.0071715703721064615 vs ...461). libm's log and an
    # exactly rounded sum give the same bits wherever the inputs are the same.
    terms = zip(ref_p.tolist(), cur_p.tolist(), strict=True)
    return math.fsum((r - c) * math.log(r / c) for r, c in terms)


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


SCORERS = {
    "wasserstein": _wasserstein_norm,
    "jensenshannon": _jensenshannon,
    "psi": psi,
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

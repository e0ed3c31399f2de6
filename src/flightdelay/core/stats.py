"""Every interval the report, the gate and the card print: one statistics module, pure (arrays in,
numbers out; no files, no params).

The percentile bootstrap is vectorised: a block of resamples is a (k, n) array of row indices.
ROC AUC and average precision come from one ``bincount`` of (resample, rank of the score, label)
per model (the Mann-Whitney statistic, ties counting one half); log loss, Brier score and F1 are
sums over the resampled rows. 1,000 paired resamples of 27,574 rows, five metrics for each of the
two models, take 1.7 s of CPU (one core). :func:`paired_bootstrap` bounds the difference of two
models on the same rows (compare, gate); :func:`metric_intervals` and :func:`slice_intervals`
bound one model's metrics (card); :func:`wilson` and :func:`rate_difference` bound proportions
(the report's label-rate drift).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Metrics compared, and whether higher is better.
METRICS: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "f1": True,
}
LABELS: dict[str, str] = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "f1": "F1",
}
CHUNK = 20  # resamples per block: memory is a few CHUNK x rows x 8-byte arrays


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


# ---------------------------------------------------------------- resampled metrics


@dataclass(frozen=True)
class Scored:
    """One model's scores on the rows, prepared once for any number of resamples."""

    y: np.ndarray  # 0/1
    scores: np.ndarray
    threshold: float
    group_code: np.ndarray  # rank of the row's score among distinct scores, + groups if y = 1
    groups: int  # number of distinct scores
    losses: dict[str, np.ndarray]  # per-row log loss and squared error
    outcome: np.ndarray  # 2 * predicted + y at the threshold (0 TN, 1 FN, 2 FP, 3 TP)

    @classmethod
    def of(cls, y: np.ndarray, scores: np.ndarray, threshold: float) -> Scored:
        y = np.asarray(y).astype(np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        distinct, rank = np.unique(scores, return_inverse=True)
        eps = np.finfo(np.float64).eps  # scikit-learn's clipping of probabilities
        p = np.clip(scores, eps, 1 - eps)
        return cls(
            y=y,
            scores=scores,
            threshold=threshold,
            group_code=rank + len(distinct) * y,
            groups=len(distinct),
            losses={
                "log_loss": -(y * np.log(p) + (1 - y) * np.log1p(-p)),
                "brier": (scores - y) ** 2,
            },
            outcome=2 * (scores >= threshold).astype(np.int64) + y,
        )


def _counts(codes: np.ndarray, size: int) -> np.ndarray:
    """Per resample (row of ``codes``), how many times each code 0..size-1 occurs: (k, size)."""
    k = codes.shape[0]
    keyed = codes + (np.arange(k, dtype=np.int64) * size)[:, None]
    return np.bincount(keyed.ravel(), minlength=k * size).reshape(k, size)


def resampled_metrics(
    drawn: np.ndarray, model: Scored, metrics: Sequence[str] = tuple(METRICS)
) -> dict[str, np.ndarray]:
    """Each metric on each resample, a row of ``drawn`` (k, m) holding row indices.

    ROC AUC is the Mann-Whitney statistic: for each distinct score (ascending), positives there
    times negatives below plus half the negatives tied. Average precision sums, over distinct
    scores (descending), the positives there times the precision at that threshold; this is
    scikit-learn's definition. Both come from one ``bincount`` of (resample, score rank, label).
    """
    out: dict[str, np.ndarray] = {}
    if {"roc_auc", "pr_auc"} & set(metrics):
        # Integer counts per (resample, label, distinct score ascending): exact sums below.
        by_score = _counts(model.group_code[drawn], 2 * model.groups)
        neg, pos = by_score[:, : model.groups], by_score[:, model.groups :]
        neg_upto, pos_upto = np.cumsum(neg, axis=1), np.cumsum(pos, axis=1)
        n_neg, n_pos = neg_upto[:, -1], pos_upto[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            if "roc_auc" in metrics:  # negatives below, plus half the tied ones, per positive
                twice = (pos * (2 * neg_upto - neg)).sum(axis=1)
                out["roc_auc"] = twice / (2.0 * n_pos * n_neg)
            if "pr_auc" in metrics:  # at each threshold: flagged = scores at or above it
                tps = n_pos[:, None] - pos_upto + pos
                flagged = tps + (n_neg[:, None] - neg_upto + neg)
                out["pr_auc"] = (pos * (tps / np.maximum(flagged, 1))).sum(axis=1) / n_pos
    for name, loss in model.losses.items():
        if name in metrics:
            out[name] = loss[drawn].mean(axis=1)
    if "f1" in metrics:
        confusion = _counts(model.outcome[drawn], 4)
        tp, fp, fn = confusion[:, 3], confusion[:, 2], confusion[:, 1]
        denominator = 2 * tp + fp + fn
        out["f1"] = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return out


def resample_indices(n: int, samples: int, seed: int | Sequence[int]) -> Iterator[np.ndarray]:
    """Blocks (k, n) of bootstrap resamples of n rows (row indices drawn with replacement)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < samples:
        k = min(CHUNK, samples - done)
        yield rng.integers(0, n, size=(k, n), dtype=np.int64)
        done += k


# ---------------------------------------------------------------- paired: two models, same rows


@dataclass(frozen=True)
class Delta:
    """One metric of both models on the same rows; ``low``/``high`` bound challenger - baseline."""

    metric: str
    challenger: float
    baseline: float
    low: float
    high: float

    @property
    def delta(self) -> float:
        return self.challenger - self.baseline

    @property
    def higher_is_better(self) -> bool:
        return METRICS.get(self.metric, True)

    @property
    def real(self) -> bool:
        """The interval excludes 0: the change is not explained by resampling noise."""
        return bool(self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` (both real) or ``noise``."""
        if not self.real:
            return "noise"
        return "better" if (self.delta > 0) == self.higher_is_better else "worse"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "real": self.real, "verdict": self.verdict}


def paired_bootstrap(
    y: np.ndarray,
    challenger: np.ndarray,
    baseline: np.ndarray,
    thresholds: tuple[float, float],
    samples: int,
    confidence: float,
    seed: int | Sequence[int],
    metrics: Sequence[str] = tuple(METRICS),
) -> dict[str, Delta]:
    """Each metric of both models on all rows, and the percentile interval of its paired delta
    (the same resampled rows score both models)."""
    if not len(y) == len(challenger) == len(baseline):
        raise ValueError(
            f"y, challenger and baseline lengths differ: {len(y)}, "
            f"{len(challenger)}, {len(baseline)}"
        )
    if len(y) == 0:
        raise ValueError("no rows to compare")
    a = Scored.of(y, challenger, thresholds[0])
    b = Scored.of(y, baseline, thresholds[1])
    everything = np.arange(len(y))[None, :]
    observed_a = resampled_metrics(everything, a, metrics)
    observed_b = resampled_metrics(everything, b, metrics)
    deltas: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for drawn in resample_indices(len(y), samples, seed):
        ma, mb = resampled_metrics(drawn, a, metrics), resampled_metrics(drawn, b, metrics)
        for m in metrics:
            deltas[m].append(ma[m] - mb[m])
    tail = (1 - confidence) / 2
    out = {}
    for m in metrics:
        values = np.concatenate(deltas[m])
        values = values[np.isfinite(values)]  # a resample without both classes has no AUC
        low, high = np.quantile(values, [tail, 1 - tail]) if len(values) else (np.nan, np.nan)
        out[m] = Delta(m, float(observed_a[m][0]), float(observed_b[m][0]), float(low), float(high))
    return out


def slice_seed(seed: int, column: str, value: str) -> list[int]:
    """The seed of one slice's resamples: the run's seed and the slice's name."""
    return [seed, zlib.crc32(f"{column}={value}".encode())]


# ---------------------------------------------------------------- one model


def percentile_interval(values: Sequence[np.ndarray], confidence: float) -> Interval | None:
    """Percentile interval of the finite values (a resample holding one class has no AUC)."""
    drawn = np.concatenate(list(values))
    drawn = drawn[np.isfinite(drawn)]
    if not len(drawn):
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(drawn, [tail, 1 - tail])
    return Interval(float(low), float(high))


def metric_intervals(
    y: np.ndarray, scores: np.ndarray, threshold: float, samples: int, seed: int, confidence: float
) -> dict[str, Interval]:
    """Percentile-bootstrap interval of every metric in METRICS on the evaluation rows:
    ``samples`` resamples of the rows with replacement, seeded."""
    if len(y) == 0:
        raise ValueError("no rows to bootstrap")
    model = Scored.of(np.asarray(y), np.asarray(scores, dtype="float64"), threshold)
    predicted = model.scores >= threshold
    late = model.y == 1
    draws: dict[str, list[np.ndarray]] = {}
    for drawn in resample_indices(len(model.y), samples, seed):
        found = resampled_metrics(drawn, model)
        hit, flagged = late[drawn], predicted[drawn]
        tp = (hit & flagged).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            found |= {
                "accuracy": (hit == flagged).mean(axis=1),
                "precision": np.where(flagged.sum(axis=1) > 0, tp / flagged.sum(axis=1), 0.0),
                "recall": tp / hit.sum(axis=1),
            }
        for key, values in found.items():
            draws.setdefault(key, []).append(values)
    intervals = {key: percentile_interval(values, confidence) for key, values in draws.items()}
    return {key: found for key, found in intervals.items() if found is not None}


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties count one half), as the bootstrap computes it."""
    model = Scored.of(np.asarray(y), np.asarray(scores, dtype="float64"), 0.5)
    return float(
        resampled_metrics(np.arange(len(model.y))[None, :], model, ["roc_auc"])["roc_auc"][0]
    )


def slice_intervals(
    predictions: pd.DataFrame,
    columns: Sequence[str],
    min_rows: int,
    samples: int,
    seed: int,
    confidence: float,
) -> dict[str, dict[str, Interval]]:
    """ROC AUC interval of every slice with at least ``min_rows`` rows and both classes."""
    out: dict[str, dict[str, Interval]] = {}
    for column in columns:
        out[column] = {}
        for value, group in predictions.groupby(column, sort=True):
            y = group["y_true"].to_numpy()
            if len(group) < min_rows or np.unique(y).size < 2:
                continue
            model = Scored.of(y, group["score"].to_numpy(dtype="float64"), 0.5)
            found = percentile_interval(
                [
                    resampled_metrics(drawn, model, ["roc_auc"])["roc_auc"]
                    for drawn in resample_indices(len(y), samples, seed)
                ],
                confidence,
            )
            if found is not None:
                out[column][str(value)] = found
    return out


# ---------------------------------------------------------------- proportions


def wilson(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (hand-written: three lines, and scipy has no
    interval of a difference of proportions to build on)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(
    p1: float, n1: int, p2: float, n2: int
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """Wilson intervals of both rates and Newcombe's hybrid score interval of p2 - p1."""
    l1, u1 = wilson(p1 * n1, n1)
    l2, u2 = wilson(p2 * n2, n2)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (l1, u1), (l2, u2), (low, high)

"""stats: the vectorised bootstrap against scikit-learn, its verdicts on synthetic models, one
model's intervals (the card's) and the proportion intervals (the report's label rate)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)

from flightdelay.core import stats
from flightdelay.core.stats import (
    Scored,
    paired_bootstrap,
    rate_difference,
    resample_indices,
    resampled_metrics,
)
from flightdelay.pipeline import card_view
from synthetic import labelled_scores as synthetic
from synthetic import noisy_scores as noisy


def test_resampled_metrics_equal_sklearn_on_each_resample_with_ties() -> None:
    y, s = synthetic(300, seed=3)
    s = np.round(s, 2)  # many tied scores
    drawn = next(resample_indices(len(y), 6, seed=11))

    got = resampled_metrics(drawn, Scored.of(y, s, threshold=0.4))

    for i, rows in enumerate(drawn):
        yy, ss = y[rows], s[rows]
        assert got["roc_auc"][i] == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert got["pr_auc"][i] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
        assert got["log_loss"][i] == pytest.approx(log_loss(yy, ss), abs=1e-12)
        assert got["brier"][i] == pytest.approx(brier_score_loss(yy, ss), abs=1e-12)
        assert got["f1"][i] == pytest.approx(f1_score(yy, (ss >= 0.4).astype(int)), abs=1e-12)


def test_paired_bootstrap_identical_models_interval_is_zero_and_noise() -> None:
    y, s = synthetic(2000)

    deltas = paired_bootstrap(y, s, s.copy(), (0.3, 0.3), 200, 0.95, seed=0)

    for d in deltas.values():
        assert d.low <= 0 <= d.high
        assert not d.real
        assert d.verdict == "noise"


def test_paired_bootstrap_equally_good_models_interval_contains_zero() -> None:
    y, s = synthetic(5000, seed=1)
    a, b = noisy(s, 0.3, seed=2), noisy(s, 0.3, seed=3)  # same quality, different errors

    d = paired_bootstrap(y, a, b, (0.3, 0.3), 500, 0.95, seed=0)["roc_auc"]

    assert d.low < 0 < d.high
    assert d.verdict == "noise"


def test_paired_bootstrap_clearly_better_model_is_real() -> None:
    y, s = synthetic(5000, seed=4)
    worse = noisy(s, 1.5, seed=5)

    deltas = paired_bootstrap(y, s, worse, (0.3, 0.3), 300, 0.95, seed=0)

    assert deltas["roc_auc"].low > 0
    assert deltas["roc_auc"].verdict == "better"
    assert deltas["log_loss"].high < 0  # lower is better: a real drop is an improvement
    assert deltas["log_loss"].verdict == "better"


def test_paired_bootstrap_clearly_worse_model_is_real_and_worse() -> None:
    y, s = synthetic(5000, seed=6)

    d = paired_bootstrap(y, noisy(s, 1.5, seed=7), s, (0.3, 0.3), 300, 0.95, seed=0)["roc_auc"]

    assert d.high < 0
    assert d.verdict == "worse"


def test_paired_bootstrap_is_reproducible_for_a_seed() -> None:
    y, s = synthetic(1000, seed=8)
    b = noisy(s, 0.5, seed=9)

    first = paired_bootstrap(y, s, b, (0.3, 0.3), 100, 0.95, seed=5)
    again = paired_bootstrap(y, s, b, (0.3, 0.3), 100, 0.95, seed=5)
    other = paired_bootstrap(y, s, b, (0.3, 0.3), 100, 0.95, seed=6)

    assert first == again
    assert first["roc_auc"].low != other["roc_auc"].low


def test_paired_bootstrap_observed_values_are_full_sample_metrics() -> None:
    y, s = synthetic(800, seed=10)
    b = noisy(s, 0.5, seed=11)

    d = paired_bootstrap(y, s, b, (0.3, 0.3), 50, 0.95, seed=0)

    assert d["roc_auc"].challenger == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert d["roc_auc"].baseline == pytest.approx(roc_auc_score(y, b), abs=1e-12)


def test_paired_bootstrap_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="lengths differ: 3, 3, 2"):
        paired_bootstrap(np.array([0, 1, 0]), np.zeros(3), np.zeros(2), (0.5, 0.5), 10, 0.95, 0)


def test_paired_bootstrap_1000_resamples_of_27k_rows_takes_seconds() -> None:
    y, s = synthetic(27_574, seed=12, late=0.107)
    b = noisy(s, 0.3, seed=13)

    started = time.perf_counter()
    paired_bootstrap(y, s, b, (0.3, 0.3), 1000, 0.95, seed=0)

    # About 1.7 s of CPU; the bound leaves room for a busy CI runner.
    assert time.perf_counter() - started < 10


# --- one model's intervals (the card) ----------------------------------------------------------


def scored(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0, 1), 2)  # with ties


def test_roc_auc_equals_sklearn_with_ties() -> None:
    y, s = scored()
    assert stats.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_metric_intervals_bracket_the_estimate_and_are_seeded() -> None:
    y, s = scored()
    first = stats.metric_intervals(y, s, 0.5, samples=100, seed=7, confidence=0.95)
    assert set(first) == set(card_view.METRICS)  # every metric the card prints
    assert first == stats.metric_intervals(y, s, 0.5, samples=100, seed=7, confidence=0.95)
    assert first != stats.metric_intervals(y, s, 0.5, samples=100, seed=8, confidence=0.95)
    roc = first["roc_auc"]
    assert roc.low < roc_auc_score(y, s) < roc.high
    narrow = stats.metric_intervals(y, s, 0.5, samples=100, seed=7, confidence=0.5)["roc_auc"]
    assert roc.low < narrow.low < narrow.high < roc.high


def test_metric_intervals_skip_resamples_with_one_class() -> None:
    y = np.array([0] * 9 + [1])
    found = stats.metric_intervals(y, np.linspace(0, 1, 10), 0.5, 50, 0, 0.9)
    assert 0 <= found["roc_auc"].low <= found["roc_auc"].high <= 1


def test_metric_intervals_without_rows_say_so() -> None:
    with pytest.raises(ValueError, match="no rows to bootstrap"):
        stats.metric_intervals(np.array([]), np.array([]), 0.5, 10, 0, 0.9)


def test_slice_intervals_only_for_large_two_class_slices() -> None:
    y, s = scored(600)
    frame = pd.DataFrame({"y_true": y, "score": s, "carrier": ["AA"] * 500 + ["ZZ"] * 100})
    found = stats.slice_intervals(frame, ["carrier"], 200, 50, 0, 0.95)
    assert set(found["carrier"]) == {"AA"}


# --- proportions (the report) ------------------------------------------------------------------


def test_rate_difference_interval_covers_zero_for_equal_rates() -> None:
    (_, _), (_, _), (low, high) = rate_difference(0.2, 1000, 0.2, 1000)

    assert low < 0 < high
    assert rate_difference(0.205, 224910, 0.107, 27574)[2][1] < -0.09

"""compare: per-slice comparisons on synthetic models, the JSON round trip. The bootstrap itself:
test_stats.py; the git look-ups: test_revisions.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flightdelay.loop.compare import (
    CompareError,
    Comparison,
    Delta,
    compare,
)
from synthetic import labelled_scores as synthetic
from synthetic import noisy_scores as noisy


def test_compare_gives_each_large_slice_its_own_interval() -> None:
    y, s = synthetic(3000, seed=14)
    frame = pd.DataFrame(
        {
            "y_true": y,
            "score": s,
            "baseline_score": noisy(s, 0.4, seed=15),
            "carrier": np.where(np.arange(3000) < 2900, "AA", "ZZ"),
        }
    )

    c = compare(
        frame,
        (0.3, 0.3),
        baseline="main",
        commit="abc",
        samples=100,
        confidence=0.95,
        seed=0,
        slice_columns=["carrier"],
        slice_min_rows=500,
    )

    assert [(s.column, s.value, s.n) for s in c.slices] == [("carrier", "AA", 2900)]
    assert c.slices[0].delta.metric == "roc_auc"
    assert set(c.metrics) == {"roc_auc", "pr_auc", "log_loss", "brier", "f1"}


def test_compare_names_a_missing_column() -> None:
    frame = pd.DataFrame({"y_true": [0, 1], "score": [0.1, 0.9]})

    with pytest.raises(CompareError, match=r"lacks column\(s\) \['baseline_score'\]"):
        compare(
            frame, (0.5, 0.5), baseline="main", commit="abc", samples=10, confidence=0.95, seed=0
        )


def test_comparison_round_trips_through_json() -> None:
    c = Comparison(
        "main",
        "abc",
        10,
        100,
        0.95,
        {"roc_auc": Delta("roc_auc", 0.8, 0.7, 0.05, 0.15)},
        notes=["n"],
    )

    assert Comparison.from_json(c.to_json()) == c
    assert c.to_json()["metrics"]["roc_auc"]["verdict"] == "better"


# ---------------------------------------------------------------- git edges

"""Model-card inputs as the pipeline writes them (model.json, evaluate.json, backtest.json,
slices.json, importance.json, drift.json) and a scored month with ties, shared by the card tests
(tests/pipeline/test_card.py) and the release tests (tests/loop/test_release.py)."""

from __future__ import annotations

import numpy as np

from output_fixtures import MODEL_METADATA, drift_json

MODEL = {
    **MODEL_METADATA,  # every key model.json holds
    "data_md5": "0123456789abcdef0123456789abcdef.dir",
    "eval_month": "2013-03",
    "featurize": {
        "cancelled": "late",
        "lead_minutes": 60,
        "target_delay_minutes": 30,
        "window_hours": 2,
    },
    "sha256": "ab" * 32,
    "target": "arr_delay >= 30 minutes",
    "threshold": 0.3141,
    "train": {**MODEL_METADATA["train"], "learning_rate": 0.1, "max_iter": 300, "seed": 42},
    "train_metrics": {"n_iter": 123.0, "train_late_share": 0.2222, "train_rows": 54321.0},
    "train_months": ["2013-01", "2013-02"],
}
EVALUATE = {
    "accuracy": 0.9011,
    "baseline_accuracy": 0.8899,
    "brier": 0.0666,
    "eval_month": "2013-03",
    "f1": 0.5432,
    "late_share": 0.1234,
    "log_loss": 0.2468,
    "n": 400.0,
    "pr_auc": 0.5678,
    "precision": 0.6543,
    "recall": 0.4321,
    "roc_auc": 0.8123,
    "threshold": 0.3141,
}
BACKTEST = [
    {
        "month": "2013-02",
        "n": 300.0,
        "late_share": 0.25,
        "roc_auc": 0.7777,
        "pr_auc": 0.6,
        "log_loss": 0.5,
        "brier": 0.17,
        "train_months": ["2013-01"],
    },
    {
        "month": "2013-03",
        "n": 400.0,
        "late_share": 0.1234,
        "roc_auc": 0.8123,
        "pr_auc": 0.5678,
        "log_loss": 0.2468,
        "brier": 0.0666,
        "train_months": ["2013-01", "2013-02"],
    },
]
#: backtest.json: the months, and their numbers keyed by month (for `dvc metrics`).
BACKTEST_JSON = {
    "months": BACKTEST,
    "by_month": {
        m["month"]: {k: v for k, v in m.items() if isinstance(v, float)} for m in BACKTEST
    },
}
SLICES = {
    "carrier": [
        {
            "carrier": "UA",
            "n": 250.0,
            "accuracy": 0.9,
            "brier": 0.07,
            "log_loss": 0.25,
            "late_share": 0.111,
            "roc_auc": 0.8555,
            "pr_auc": 0.5,
            "recall": 0.4,
            "precision": 0.6,
            "f1": 0.48,
        },
        {"carrier": "ZZ", "n": 150},
    ],
    "origin": [
        {
            "origin": "EWR",
            "n": 400.0,
            "accuracy": 0.9011,
            "brier": 0.0666,
            "log_loss": 0.2468,
            "late_share": 0.1234,
            "roc_auc": 0.8123,
            "pr_auc": 0.5678,
            "recall": 0.4321,
            "precision": 0.6543,
            "f1": 0.5432,
        },
    ],
}
IMPORTANCE = [
    {"feature": "origin_waiting", "importance": 0.0302, "std": 0.0036},
    {"feature": "carrier", "importance": 0.0222, "std": 0.0028},
]
DRIFT = {
    **drift_json(
        current_month="2013-03",
        dataset={"drifted_features": ["temp", "dewp"], "n_current_rows": 28834},
        label={"psi": 0.04, "reference_late_rate": 0.2222, "current_late_rate": 0.1234},
        performance={
            "by_month": {"2013-02": 0.7777, "2013-03": 0.8123},
            "current": 0.8123,
            "backtest_mean": 0.7777,
            "backtest_worst": 0.7777,
            "drop_below_worst": -0.0346,
        },
    ),
    "prediction": {"available": False, "drifted": False},
}


def scored(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0, 1), 2)  # with ties

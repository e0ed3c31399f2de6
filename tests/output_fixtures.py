"""Whole pipeline outputs, shaped as the stages write them (values taken from the repository's own
outputs, lists shortened): every key the typed model (flightdelay.core.outputs) requires, so a
test that writes one writes a file the readers accept. Tests change a value with ``{**X, ...}``.
"""

from __future__ import annotations

from typing import Any

#: evaluate.json (the real file).
EVALUATION: dict[str, Any] = {
    "accuracy": 0.9168368091001896,
    "baseline_accuracy": 0.8980968353507365,
    "brier": 0.0656528613866361,
    "eval_month": "2013-09",
    "f1": 0.5033747006313956,
    "late_share": 0.10190316464926352,
    "log_loss": 0.2440131269817336,
    "n": 27428.0,
    "pr_auc": 0.5366306012946407,
    "precision": 0.64293659621802,
    "recall": 0.41359570661896244,
    "roc_auc": 0.8102402444994488,
    "threshold": 0.30454198492458623,
}

#: model.json as train writes it (input_schema shortened to three columns).
MODEL_METADATA: dict[str, Any] = {
    "data_md5": "0123456789abcdef0123456789abcdef.dir",
    "eval_month": "2013-04",
    "featurize": {
        "cancelled": "late",
        "lead_minutes": 60,
        "target_delay_minutes": 30,
        "unknown_aircraft_share": 0.0,
        "weather_at": "scheduled_hour",
        "window_hours": 2,
    },
    "input_schema": [
        {"dtype": "string", "name": "carrier"},
        {"dtype": "string", "name": "origin"},
        {"dtype": "float64", "name": "dep_hour"},
    ],
    "sha256": "701849e7c950eed1dc1bc99d8f822de48aef7d4382d62e141d26e69b93b360bf",
    "target": "arr_delay >= 30 minutes",
    "threshold": 0.4357637995790236,
    "train": {
        "early_stopping_rounds": 10,
        "l2_regularization": 1.0,
        "learning_rate": 0.1,
        "max_iter": 30,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 10,
        "seed": 42,
        "validation_fraction": 0.1,
    },
    "train_metrics": {
        "n_iter": 28.0,
        "train_late_share": 0.3878968253968254,
        "train_roc_auc": 0.908535650184251,
        "train_rows": 1008.0,
    },
    "train_months": ["2013-01", "2013-02", "2013-03"],
    "trusted_types": [
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
    ],
}

_JULY = {
    "brier": 0.1454179020645164,
    "late_share": 0.25995059017293437,
    "log_loss": 0.4529826482556854,
    "n": 29144.0,
    "pr_auc": 0.6406079784196013,
    "roc_auc": 0.8047397768879705,
}
_AUGUST = {
    "brier": 0.10894830862320747,
    "late_share": 0.1743182129642319,
    "log_loss": 0.3632983451439849,
    "n": 29188.0,
    "pr_auc": 0.5678630498847459,
    "roc_auc": 0.7928859418630445,
}
_FIRST = ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"]
#: backtest.json (two of its months).
BACKTEST: dict[str, Any] = {
    "by_month": {"2013-07": _JULY, "2013-08": _AUGUST},
    "months": [
        {**_JULY, "month": "2013-07", "train_months": _FIRST},
        {**_AUGUST, "month": "2013-08", "train_months": [*_FIRST, "2013-07"]},
    ],
}

#: slices.json (a measured and a too-small carrier, one origin): ``n`` is an int in a slice with
#: ``n`` only, a float in a measured one.
SLICES: dict[str, Any] = {
    "carrier": [
        {
            "accuracy": 0.8937566137566137,
            "brier": 0.08270762908166504,
            "carrier": "EV",
            "f1": 0.5588752196836555,
            "late_share": 0.13925925925925925,
            "log_loss": 0.2961761857867569,
            "n": 4725.0,
            "pr_auc": 0.5985124382810939,
            "precision": 0.6625,
            "recall": 0.48328267477203646,
            "roc_auc": 0.8057207429058708,
        },
        {"carrier": "OO", "n": 20},
    ],
    "origin": [
        {
            "accuracy": 0.921873359235535,
            "brier": 0.06285660795116237,
            "f1": 0.5130890052356021,
            "late_share": 0.0969232384752704,
            "log_loss": 0.23754639684088805,
            "n": 9523.0,
            "origin": "EWR",
            "pr_auc": 0.5297705826246352,
            "precision": 0.6479338842975206,
            "recall": 0.4247020585048754,
            "roc_auc": 0.8063287056867142,
        }
    ],
}

#: importance.json (two of its features).
IMPORTANCE: dict[str, Any] = {
    "features": [
        {
            "feature": "origin_waiting",
            "importance": 0.04361418890945309,
            "std": 0.0007379419754619082,
        },
        {"feature": "carrier", "importance": 0.0155674958312673, "std": 0.005253993189249732},
    ]
}

#: outputs/validation/summary.json of data that passed (two months of each table).
PASSED_VALIDATION: dict[str, Any] = {
    "batches": {"flights": ["2013-01", "2013-02"], "weather": ["2013-01", "2013-02"]},
    "failures": [],
    "groups": {
        "flights": {
            "completeness": {"checks": 1, "failed": 0},
            "ranges": {"checks": 12, "failed": 0},
            "readable": {"checks": 2, "failed": 0},
        },
        "weather": {
            "completeness": {"checks": 1, "failed": 0},
            "readable": {"checks": 2, "failed": 0},
        },
    },
    "rows": {"flights": 51955, "weather": 2889},
    "skipped_from_row_checks": {"flights": [], "weather": []},
    "success": True,
}

#: One failed expectation, as validate records it.
DEP_DELAY_FAILURE: dict[str, Any] = {
    "batches": {"2013-10": 12},
    "column": "dep_delay",
    "detail": "12 values outside [-60, 1500]",
    "examples": [9999],
    "expectation": "expect_column_values_to_be_between",
    "group": "ranges",
    "table": "flights",
}

#: release.json of a signed prod release, as `flightdelay release` writes it (every key).
RELEASE: dict[str, Any] = {
    "artifact": "flight-delay",
    "version": "v0.2.0",
    "stage": "prod",
    "tag": "flight-delay#prod#4",
    "version_tag": "flight-delay@v0.2.0",
    "commit": "c" * 40,
    "model_path": "outputs/model",
    "model_md5": "0123456789abcdef0123456789abcdef.dir",
    "data_md5": "fedcba9876543210fedcba9876543210.dir",
    "mlflow_run_id": None,
    "signature": {
        "method": "key",
        "signer": "key sha256:" + "e" * 64,
        "issuer": None,
        "digest": "sha256:" + "d" * 64,
        "files": 3,
    },
    "unsigned_override": None,
}


def failed_validation(*failures: dict[str, Any]) -> dict[str, Any]:
    """The summary of data that failed ``failures`` (DEP_DELAY_FAILURE when none is given)."""
    found = list(failures or (DEP_DELAY_FAILURE,))
    groups = {
        **PASSED_VALIDATION["groups"],
        "flights": {
            **PASSED_VALIDATION["groups"]["flights"],
            "ranges": {"checks": 12, "failed": len(found)},
        },
    }
    return {**PASSED_VALIDATION, "success": False, "failures": found, "groups": groups}


def slice_row(column: str, value: str, n: float, **metrics: float) -> dict[str, Any]:
    """A measured slice of ``column`` with every metric evaluate writes, ``metrics`` overriding."""
    measured = {k: v for k, v in SLICES["carrier"][0].items() if k != "carrier"}
    return {**measured, column: value, "n": n, **metrics}


def drift_json(**changes: Any) -> dict[str, Any]:
    """drift.json of a batch as drift.DriftReport.summary writes it (every section, each measured);
    a dict in ``changes`` updates its section key by key, any other value replaces the key's."""
    base: dict[str, Any] = {
        "any_drift": False,
        "current_month": "2013-10",
        "reference_months": ["2013-01", "2013-02"],
        "dataset": {
            "drifted": False,
            "share_drifted": 0.2,
            "n_drifted": 7,
            "n_features": 35,
            "drift_share_threshold": 0.5,
            "drifted_features": ["temp"],
            "n_reference_rows": 51955,
            "n_current_rows": 28889,
            "not_tested": [],
            "excluded": [],
            "problems": [],
        },
        "label": {
            "available": True,
            "drifted": False,
            "method": "jensenshannon",
            "score": 0.05,
            "threshold": 0.1,
            "psi": 0.01,
            "message": "",
            "reference_late_rate": 0.2,
            "current_late_rate": 0.19,
        },
        "prediction": {
            "available": True,
            "drifted": False,
            "method": "wasserstein",
            "score": 0.04,
            "threshold": 0.1,
            "psi": 0.02,
            "message": "",
            "reference_mean_score": 0.2,
            "current_mean_score": 0.21,
        },
        "performance": {
            "available": True,
            "drifted": False,
            "metric": "roc_auc",
            "higher_is_better": True,
            "max_drop": 0.02,
            "by_month": {"2013-09": 0.80, "2013-10": 0.81},
            "message": "",
            "current": 0.81,
            "backtest_mean": 0.80,
            "backtest_worst": 0.80,
            "drop_below_worst": -0.01,
        },
    }
    for key, value in changes.items():
        base[key] = base[key] | value if isinstance(value, dict) else value
    return base

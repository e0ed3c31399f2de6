"""Report inputs as ``report.gather`` returns them, for the pull requests a reviewer sees: a params
change, the October data PR, main's own report (no change) and a failed validation. Numbers are
those of the real runs the issue quotes (September/October 2013), scores are synthetic."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.drift_summary import DriftSummary
from flightdelay.core.outputs import EvaluateMetrics, Slices, ValidationSummary
from flightdelay.core.params import Params
from flightdelay.loop.compare import Comparison, Delta, SliceDelta
from flightdelay.loop.gate import Challenger, decide
from flightdelay.loop.report import Baseline, DataChange, ReportInputs, data_diff, params_diff
from flightdelay.loop.report_plots import Curves, PlotData

FAILED_VALIDATION = {
    "success": False,
    "batches": {"flights": ["2013-09", "2013-10"]},
    "rows": {"flights": 55102},
    "groups": {
        "flights": {"ranges": {"checks": 12, "failed": 1}, "schema": {"checks": 10, "failed": 0}}
    },
    "failures": [
        {
            "table": "flights",
            "group": "ranges",
            "column": "dep_delay",
            "expectation": "expect_column_values_to_be_between",
            "batches": {"2013-10": 12},
            "detail": "12 values outside [-60, 1500]",
            "examples": [9999, 10000],
        }
    ],
    "skipped_from_row_checks": {},
}
PASSED_VALIDATION = {
    **FAILED_VALIDATION,
    "success": True,
    "failures": [],
    "groups": {"flights": {"ranges": {"checks": 12, "failed": 0}}},
}
METRICS: dict[str, Any] = {
    "eval_month": "2013-09",
    "n": 27574.0,
    "roc_auc": 0.8133,
    "pr_auc": 0.5558,
    "log_loss": 0.2489,
    "brier": 0.0672,
    "f1": 0.5166,
    "threshold": 0.3046627746333811,
    # evaluate.json's other keys (the report's table does not show them)
    "late_share": 0.1019,
    "baseline_accuracy": 0.8981,
    "accuracy": 0.9168,
    "precision": 0.6429,
    "recall": 0.4136,
}
FEATURES = ["temp", "dewp", "wind_gust", "humid", "precip", "pressure", "visib", "origin_waiting"]
FEATURE_TABLE = {
    "header": [
        "feature",
        "kind",
        "test",
        "score",
        "threshold",
        "drift",
        "PSI",
        "null % ref/cur",
        "note",
    ],
    "rows": [
        [f, "numeric", "wasserstein", f"{0.6 - 0.05 * i:.4g}", "0.1", "yes", "2.1", "0.0/0.0", ""]
        for i, f in enumerate(FEATURES)
    ]
    + [
        [f"feature_{i}", "numeric", "wasserstein", "0.01", "0.1", "no", "0.01", "0.0/0.0", ""]
        for i in range(20)
    ],
    "notes": ["day_of_week: excluded (calendar column: differs between months by construction)"],
}


def drift(month: str = "2013-09", performance_drift: bool = False) -> DriftSummary:
    current = 0.7797 if performance_drift else 0.8213
    payload = {
        "any_drift": True,
        "current_month": month,
        "reference_months": ["2013-01", "2013-08"],
        "dataset": {
            "drifted": False,
            "n_drifted": 17,
            "n_features": 39,
            "share_drifted": 0.436,
            "drift_share_threshold": 0.5,
            "drifted_features": FEATURES,
            "excluded": [{"column": "day_of_week", "reason": "calendar"}],
            "n_reference_rows": 224910,
            "n_current_rows": 27574,
        },
        "label": {
            "available": True,
            "drifted": False,
            "method": "jensenshannon",
            "score": 0.0969,
            "threshold": 0.1,
            "reference_late_rate": 0.2053,
            "current_late_rate": 0.1067,
        },
        "prediction": {
            "available": True,
            "drifted": True,
            "method": "wasserstein",
            "score": 0.477,
            "threshold": 0.1,
            "reference_mean_score": 0.244,
            "current_mean_score": 0.123,
        },
        "performance": {
            "available": True,
            "drifted": performance_drift,
            "metric": "roc_auc",
            "higher_is_better": True,
            "message": "",
            "current": current,
            "backtest_mean": 0.8126,
            "backtest_worst": 0.8040,
            "drop_below_worst": 0.8040 - current,
            "max_drop": 0.02,
            "by_month": {"2013-07": 0.8212, "2013-08": 0.8040, month: current},
        },
    }
    return DriftSummary.parse(payload, "drift.json")


def comparison(name: str, commit: str, sha: str, regressed: bool = True) -> Comparison:
    metrics = {
        "roc_auc": Delta("roc_auc", 0.8133, 0.8124, -0.0012, 0.0032),
        "pr_auc": Delta("pr_auc", 0.5558, 0.5601, -0.0101, 0.0015),
        "log_loss": Delta("log_loss", 0.2389, 0.2485, -0.012, -0.007),
        "brier": Delta("brier", 0.0672, 0.0670, -0.0004, 0.0008),
        "f1": Delta("f1", 0.5166, 0.5100, 0.0010, 0.0122),
    }
    slices = [
        SliceDelta("carrier", "9E", 1504, Delta("roc_auc", 0.7700, 0.7804, -0.0191, -0.0016)),
        SliceDelta("carrier", "UA", 4694, Delta("roc_auc", 0.8120, 0.8110, -0.004, 0.006)),
        SliceDelta("origin", "EWR", 9550, Delta("roc_auc", 0.8130, 0.8120, -0.002, 0.004)),
    ]
    if not regressed:
        slices = slices[1:]
    return Comparison(name, commit, 27574, 1000, 0.95, metrics, slices, baseline_sha256=sha)


def slices_json() -> dict[str, list[dict[str, Any]]]:
    return {
        "carrier": [
            {"carrier": c, "n": n, "roc_auc": v}
            for c, n, v in [
                ("EV", 4725, 0.809),
                ("UA", 4694, 0.812),
                ("9E", 1504, 0.770),
                ("DL", 3988, 0.684),
                ("OO", 40, 0.5),
            ]
        ],
        "origin": [
            {"origin": o, "n": n, "roc_auc": v}
            for o, n, v in [("EWR", 9550, 0.813), ("LGA", 9116, 0.844), ("JFK", 8908, 0.801)]
        ],
    }


CARD_OLD = """# Model card

## Metrics

| metric | value | 95 % interval | what it measures |
|---|---|---|---|
| ROC AUC | 0.812 | [0.804, 0.821] | ranking |
| PR AUC (average precision) | 0.560 | [0.54, 0.58] | ranking, late class |
| log loss | 0.242 | [0.235, 0.248] | probability quality |

| month | trained on | flights | late | ROC AUC | PR AUC |
|---|---|---|---|---|---|
| 2013-09 | 2013-01 .. 2013-08 | 27,574 | 10.7 % | 0.812 | 0.560 |

## Quantitative analyses

| carrier | 0.80 |
"""
CARD_NEW = CARD_OLD.replace("| ROC AUC | 0.812 |", "| ROC AUC | 0.813 |").replace(
    "| carrier | 0.80 |", "| carrier | 0.81 |"
)


def curves(seed: int = 0, n: int = 4000) -> Curves:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(int)
    signal = y * 1.6 + rng.normal(size=n)

    def model(noise: float) -> np.ndarray:
        raw = signal + rng.normal(scale=noise, size=n)
        return 1 / (1 + np.exp(-(raw - 2.0)))

    return Curves(
        y=y,
        scores={"this change": model(0.3), "main": model(0.5), "prod": model(0.8)},
        threshold=METRICS["threshold"],
        month="2013-09",
    )


def drift_frames(month: str = "2013-09") -> dict[str, pd.DataFrame]:
    months = [f"2013-{m:02d}" for m in range(1, 10)] + ([month] if month > "2013-09" else [])
    bins = [f"{x:.1f}" for x in np.linspace(0, 1, 10)]
    dist = pd.concat(
        [
            pd.DataFrame(
                {
                    "bin": bins,
                    "reference": np.linspace(0.2, 0.0, 10),
                    "current": np.full(10, 0.1),
                    "feature": f,
                }
            )
            for f in FEATURES[:5]
        ]
    )
    return {
        "drift_scores": pd.DataFrame(
            {
                "feature": FEATURES + [f"feature_{i}" for i in range(20)],
                "method": "wasserstein",
                "score": [0.6 - 0.05 * i for i in range(8)] + [0.01] * 20,
                "threshold": 0.1,
                "severity": [6 - 0.5 * i for i in range(8)] + [0.1] * 20,
                "drifted": [True] * 8 + [False] * 20,
            }
        ),
        "late_rate": pd.DataFrame(
            {
                "month": months,
                "flights": 27000,
                "late_rate": np.linspace(0.16, 0.11, len(months)),
                "role": ["reference"] * (len(months) - 1) + ["current"],
            }
        ),
        "performance": pd.DataFrame(
            {
                "month": ["2013-07", "2013-08", month],
                "metric": "roc_auc",
                "value": [0.8212, 0.8040, 0.7797],
                "role": ["backtest", "backtest", "current"],
            }
        ),
        "distributions": dist,
        "scores": pd.DataFrame(
            {"bin": bins, "reference": np.linspace(0.2, 0.0, 10), "current": np.full(10, 0.1)}
        ),
    }


MAIN = "1234567890abcdef1234567890abcdef12345678"
PROD = "abcdef1234567890abcdef1234567890abcdef12"
HEAD = "fedcba9876543210fedcba9876543210fedcba98"


def params_pr(params: Params, **changes: Any) -> ReportInputs:
    """A training-parameter PR: main is the production model; one slice really got worse."""
    main = comparison("main", MAIN, "old")
    base = Baseline("main", MAIN, main)
    prod = Baseline("prod (flight-delay@v0.1.0)", MAIN, replace(main, baseline="prod"))
    challenger = Challenger(METRICS, slices_json(), PASSED_VALIDATION)
    verdict = decide(challenger, prod.comparison, params.gate)
    verdict = replace(verdict, champion="prod (flight-delay@v0.1.0)")
    defaults: dict[str, Any] = {
        "verdict": verdict,
        "gate": params.gate,
        "bootstrap": params.bootstrap,
        "base": base,
        "prod": prod,
        "validation": PASSED_VALIDATION,
        "metrics": METRICS,
        "params_diff": params_diff(
            {"train": {"learning_rate": 0.2, "seed": 42}},
            {"train": {"learning_rate": 0.05, "seed": 42}},
        ),
        "drift": drift(),
        "drift_table": FEATURE_TABLE,
        "slices": slices_json(),
        "scores": curves(),
        "cards": (CARD_OLD, CARD_NEW),
        "commit": HEAD,
        "data_md5": "33f6e08a40adf8a5b490e6aa6fae2342.dir",
        "mlflow_run_id": "run123",
        "model_sha256": "new",
    }
    return ReportInputs(**_typed({**defaults, **changes}))


def _typed(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs with the JSON outputs given as files hold them read through their types."""
    outputs = {"validation": ValidationSummary, "metrics": EvaluateMetrics, "slices": Slices}
    return {
        key: outputs[key].parse(value, key) if key in outputs and isinstance(value, dict) else value
        for key, value in inputs.items()
    }


def data_pr(params: Params, **changes: Any) -> ReportInputs:
    """The October data PR: a new batch, performance drift on the new month."""
    october = {**METRICS, "eval_month": "2013-10", "n": 28889.0}
    base = Baseline("main", MAIN, comparison("main", MAIN, "old", regressed=False))
    prod = Baseline("prod (flight-delay@v0.1.0)", PROD, comparison("prod", PROD, "older", False))
    verdict = decide(
        Challenger(october, slices_json(), PASSED_VALIDATION), prod.comparison, params.gate
    )
    verdict = replace(verdict, champion="prod (flight-delay@v0.1.0)")
    return params_pr(
        params,
        **{
            "verdict": verdict,
            "base": base,
            "prod": prod,
            "metrics": october,
            "params_diff": [],
            "data_diff": data_diff(
                {"meta": {"files": {}}},
                {"meta": {"files": {"flights/2013-10.csv": {"md5": "c" * 32, "rows": 28889}}}},
            ),
            "data_files": (18, 20),
            "drift": drift("2013-10", performance_drift=True),
            **changes,
        },
    )


def main_report(params: Params, **changes: Any) -> ReportInputs:
    """main's own report: nothing changed; prod is this model."""
    same = comparison("main", HEAD, "same")
    base = Baseline("main", HEAD, same)
    prod = Baseline("prod (flight-delay@v0.1.0)", HEAD, replace(same, baseline="prod"))
    verdict = decide(Challenger(METRICS, slices_json(), PASSED_VALIDATION), same, params.gate)
    return params_pr(
        params,
        **{
            "verdict": replace(verdict, champion="prod (flight-delay@v0.1.0)"),
            "base": base,
            "prod": prod,
            "params_diff": [],
            "cards": (CARD_NEW, CARD_NEW),
            "model_sha256": "same",
            "scores": Curves(
                curves().y,
                {"this change": curves().scores["this change"]},
                METRICS["threshold"],
                "2013-09",
            ),
            **changes,
        },
    )


def failed_validation(params: Params) -> ReportInputs:
    verdict = decide(Challenger(None, None, FAILED_VALIDATION), None, params.gate)
    return params_pr(
        params,
        verdict=verdict,
        prod=None,
        validation=FAILED_VALIDATION,
        metrics=None,
        drift=None,
        slices=None,
        scores=None,
        cards=(None, None),
        skipped_models="data validation failed, so no model was built from this data: model "
        "sections left out.",
    )


def plot_data(inputs: ReportInputs) -> PlotData:
    month = inputs.drift.current_month if inputs.drift else "2013-09"
    return PlotData(
        curves=inputs.scores,
        drift=drift_frames(month) if inputs.drift else {},
        current_month=month,
        performance=inputs.drift.performance if inputs.drift else None,
    )


__all__ = ["DataChange", "data_pr", "failed_validation", "main_report", "params_pr", "plot_data"]

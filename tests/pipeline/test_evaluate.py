from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.features import FEATURE_COLUMNS
from flightdelay.core.params import EvaluateParams, TrainParams
from flightdelay.pipeline import featurize as featurize_stage
from flightdelay.pipeline import train as train_stage
from flightdelay.pipeline.evaluate import (
    BACKTEST_PREDICTION_COLUMNS,
    backtest_document,
    classification_metrics,
    evaluate,
    main,
    slice_metrics,
    thin,
)
from flightdelay.pipeline.train import fit, score, train
from synthetic import TRAIN, feature_table, work_tree

TRAIN_PARAMS = TrainParams(**TRAIN)
PARAMS = EvaluateParams(
    backtest_months=2,
    importance_sample=200,
    importance_repeats=2,
    min_slice_rows=50,
)


@pytest.fixture(scope="module")
def evaluation():
    features = feature_table()
    result = train(features, TRAIN_PARAMS)
    return (
        features,
        result,
        evaluate(features, result.pipeline, result.threshold, TRAIN_PARAMS, PARAMS),
    )


def test_evaluate_scores_only_the_newest_month(evaluation) -> None:
    features, _, ev = evaluation
    assert ev.metrics["eval_month"] == "2013-04"
    assert ev.metrics["n"] == (features["month"] == "2013-04").sum()
    assert set(ev.predictions["month"]) == {"2013-04"}


def test_evaluate_metrics_include_threshold_metrics_and_majority_baseline(evaluation) -> None:
    _, result, ev = evaluation
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1", "baseline_accuracy"):
        assert 0 <= ev.metrics[key] <= 1 or key == "log_loss"
    assert ev.metrics["threshold"] == result.threshold
    assert ev.metrics["roc_auc"] > 0.6  # the synthetic data carries a real signal


def test_backtest_trains_on_the_past_and_tests_each_of_the_last_months(evaluation) -> None:
    _, _, ev = evaluation
    assert [b["month"] for b in ev.backtest] == ["2013-03", "2013-04"]
    assert ev.backtest[0]["train_months"] == ["2013-01", "2013-02"]
    assert ev.backtest[1]["roc_auc"] == ev.metrics["roc_auc"]  # same training months, same model


def test_predictions_have_keys_scores_and_features(evaluation) -> None:
    _, result, ev = evaluation
    p = ev.predictions
    assert list(p.columns[:5]) == ["month", "flight_id", "y_true", "score", "predicted"]
    assert set(FEATURE_COLUMNS) <= set(p.columns)
    assert ((p["score"] >= result.threshold) == (p["predicted"] == 1)).all()


def test_backtest_predictions_hold_the_earlier_backtest_months_only(evaluation) -> None:
    features, _, ev = evaluation
    p = ev.backtest_predictions
    assert tuple(p.columns) == BACKTEST_PREDICTION_COLUMNS
    assert set(p["month"]) == {"2013-03"}  # backtest 2013-03, 2013-04; 2013-04 is evaluated
    march = features[features["month"] == "2013-03"]
    assert p["flight_id"].tolist() == march["flight_id"].tolist()
    assert p["y_true"].tolist() == march["late"].tolist()


def test_backtest_predictions_are_scores_of_a_fit_on_the_earlier_months(evaluation) -> None:
    features, result, ev = evaluation
    march = features[features["month"] == "2013-03"]
    past = fit(features[features["month"] < "2013-03"], TRAIN_PARAMS)
    np.testing.assert_array_equal(ev.backtest_predictions["score"], score(past, march))
    # Not the final model's scores: that one trained on March (in-sample).
    assert not np.allclose(ev.backtest_predictions["score"], score(result.pipeline, march))


def test_backtest_predictions_are_empty_without_an_earlier_backtest_month(evaluation) -> None:
    features, result, _ = evaluation
    ev = evaluate(
        features,
        result.pipeline,
        result.threshold,
        TRAIN_PARAMS,
        PARAMS.model_copy(update={"backtest_months": 1}),
    )
    assert [b["month"] for b in ev.backtest] == ["2013-04"]
    assert ev.backtest_predictions.empty
    assert tuple(ev.backtest_predictions.columns) == BACKTEST_PREDICTION_COLUMNS


def test_backtest_document_keys_months_for_dvc_metrics(evaluation) -> None:
    _, _, ev = evaluation
    document = backtest_document(ev.backtest)
    assert document["months"] == ev.backtest
    assert document["by_month"]["2013-03"]["roc_auc"] == ev.backtest[0]["roc_auc"]
    assert "train_months" not in document["by_month"]["2013-03"]


def test_slices_cover_every_carrier_and_origin_with_counts(evaluation) -> None:
    _, _, ev = evaluation
    assert {s["origin"] for s in ev.slices["origin"]} == {"EWR", "JFK", "LGA"}
    assert sum(s["n"] for s in ev.slices["carrier"]) == ev.metrics["n"]


def test_slice_metrics_small_slice_gets_count_only() -> None:
    frame = pd.DataFrame(
        {
            "carrier": ["AA"] * 60 + ["ZZ"] * 3,
            "y_true": [0, 1] * 30 + [1, 0, 1],
            "score": np.linspace(0, 1, 63),
        }
    )
    slices = slice_metrics(frame, "carrier", 0.5, min_rows=50)
    assert slices[0]["carrier"] == "AA"
    assert "roc_auc" in slices[0]
    assert slices[1] == {"carrier": "ZZ", "n": 3}


def test_classification_metrics_single_class_has_no_auc() -> None:
    metrics = classification_metrics(np.array([0, 0]), np.array([0.1, 0.2]), 0.5)
    assert "roc_auc" not in metrics
    assert metrics["accuracy"] == 1.0


def test_importance_is_seeded(evaluation) -> None:
    features, result, ev = evaluation
    again = evaluate(
        features,
        result.pipeline,
        result.threshold,
        TRAIN_PARAMS,
        PARAMS.model_copy(update={"backtest_months": 0}),
    )
    assert again.importance == ev.importance
    assert {r["feature"] for r in ev.importance} == set(FEATURE_COLUMNS)


def test_thin_keeps_first_and_last_points() -> None:
    curve = pd.DataFrame({"x": np.arange(1000)})
    thinned = thin(curve, 10)
    assert len(thinned) == 10
    assert thinned["x"].iloc[[0, -1]].tolist() == [0, 999]


def test_main_writes_metrics_plots_and_predictions(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1, 2, 3)))
    assert featurize_stage.main([]) == 0
    assert train_stage.main(["--no-mlflow"]) == 0
    assert main([]) == 0
    metrics = json.loads(Path("outputs/metrics/evaluate.json").read_text())
    assert metrics["eval_month"] == "2013-03"
    for name in ("backtest.json", "slices.json", "importance.json"):
        assert Path("outputs/metrics", name).is_file()
    for name in ("roc", "pr", "calibration", "confusion"):
        assert Path("outputs/plots", f"{name}.csv").is_file()
        assert Path("outputs/plots", f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    predictions = pd.read_parquet("outputs/predictions.parquet")
    assert len(predictions) == metrics["n"]
    # backtest_months 3 of 2013-01..03: 2013-01 has no past, 2013-03 is the evaluation month.
    backtest = pd.read_parquet("outputs/backtest_predictions.parquet")
    assert set(backtest["month"]) == {"2013-02"}
    assert (
        len(backtest)
        == json.loads(Path("outputs/metrics/backtest.json").read_text())["by_month"]["2013-02"]["n"]
    )


def test_main_refuses_a_tampered_model(
    tmp_path: Path,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1, 2)))
    assert featurize_stage.main([]) == 0
    assert train_stage.main(["--no-mlflow"]) == 0
    meta = json.loads(Path("outputs/model/model.json").read_text())
    Path("outputs/model/model.json").write_text(json.dumps(meta | {"sha256": "0" * 64}))
    assert main([]) == 1
    assert "does not match" in capsys.readouterr().err

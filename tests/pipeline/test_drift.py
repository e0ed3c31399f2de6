"""Drift: Evidently's default tests on tiny frames, bad input, the stage on tmp_path."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from scipy.spatial import distance

from flightdelay.core.io import write_json
from flightdelay.core.outputs import Backtest, BacktestMonth, ModelMetadata
from flightdelay.core.params import (
    ColumnDriftParams,
    DriftParams,
    Params,
    ParamsError,
    parse_params,
)
from flightdelay.pipeline import drift, drift_plots, stattests
from flightdelay.pipeline.feature_drift import column_drift, dataset_drift
from flightdelay.pipeline.stattests import DriftError, default_method, infer_kind
from output_fixtures import MODEL_METADATA


def _params(**overrides: object) -> DriftParams:
    base: dict[str, object] = {
        "drift_share": 0.5,
        "calendar_columns": (),
        "top_features": 3,
        "performance_metric": "roc_auc",
        "max_performance_drop": 0.02,
    }
    return DriftParams.model_validate({**base, **overrides})


def _unchecked_params(**overrides: object) -> DriftParams:
    """Params that skip load-time validation, which already refuses names that are not model
    features: the stage's own guard is for frames whose columns come from elsewhere."""
    checked = _params()
    return checked.model_copy(update=overrides)


def _normal(n: int, shift: float = 0.0, seed: int = 0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(shift, 1.0, n))


# ---------------------------------------------------------------- method choice


@pytest.mark.parametrize(
    ("kind", "n_reference", "n_unique", "expected"),
    [
        ("numeric", 1001, 6, "wasserstein"),
        ("numeric", 1001, 5, "jensenshannon"),
        ("categorical", 1001, 50, "jensenshannon"),
        ("numeric", 1000, 6, "ks"),
        ("numeric", 1000, 5, "chisquare"),
        ("numeric", 1000, 2, "z"),
        ("categorical", 1000, 3, "chisquare"),
        ("categorical", 1000, 2, "z"),
    ],
)
def test_default_method_follows_evidently_thresholds(
    kind: stattests.Kind, n_reference: int, n_unique: int, expected: str
) -> None:
    assert default_method(kind, n_reference, n_unique) == expected


def test_column_drift_counts_reference_rows_after_dropping_nulls() -> None:
    # 1,200 rows but only 900 non-null: a "small" reference, so KS and not Wasserstein.
    reference = pd.concat([_normal(900), pd.Series([np.nan] * 300)], ignore_index=True)
    result = column_drift(reference, _normal(500, seed=1), "x", "numeric")
    assert (result.method, result.n_reference, result.null_share_reference) == ("ks", 900, 0.25)


def test_column_drift_counts_distinct_values_of_both_samples() -> None:
    # 3 values in the reference and 3 others in the current batch: 6 > 5, so Wasserstein.
    reference = pd.Series([1.0, 2.0, 3.0] * 500)
    current = pd.Series([4.0, 5.0, 6.0] * 100)
    assert column_drift(reference, current, "x", "numeric").method == "wasserstein"


# ---------------------------------------------------------------- values


def test_wasserstein_is_scipy_distance_over_population_std() -> None:
    reference, current = _normal(3000), _normal(2000, shift=0.3, seed=1)
    result = column_drift(reference, current, "x", "numeric")
    expected = stats.wasserstein_distance(reference, current) / np.std(reference.to_numpy())
    assert result.method == "wasserstein"
    assert result.score == pytest.approx(expected, rel=1e-12)
    assert result.drifted is bool(expected >= 0.1)


def test_wasserstein_floors_the_std_of_a_constant_reference() -> None:
    reference, current = pd.Series([1.0] * 2000), pd.Series(np.arange(10.0))
    result = column_drift(reference, current, "x", "numeric")
    assert result.score == pytest.approx(stats.wasserstein_distance(reference, current) / 0.001)


def test_jensenshannon_uses_value_shares_of_a_categorical_column() -> None:
    reference = pd.Series(["a"] * 700 + ["b"] * 300 + ["c"] * 100)
    current = pd.Series(["a"] * 400 + ["b"] * 400 + ["c"] * 200)
    result = column_drift(reference, current, "carrier", "categorical")
    expected = distance.jensenshannon([700 / 1100, 300 / 1100, 100 / 1100], [0.4, 0.4, 0.2])
    assert (result.method, result.score) == ("jensenshannon", pytest.approx(expected, rel=1e-12))
    assert result.drifted is bool(expected >= 0.1)


def test_jensenshannon_override_bins_a_wide_numeric_column_by_sturges() -> None:
    reference, current = _normal(2000), _normal(1500, shift=0.5, seed=1)
    result = column_drift(reference, current, "x", "numeric", method="jensenshannon")
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    expected = distance.jensenshannon(
        np.histogram(reference, edges)[0] / 2000, np.histogram(current, edges)[0] / 1500
    )
    assert result.score == pytest.approx(expected, rel=1e-12)


def test_ks_decides_at_p_at_most_threshold() -> None:
    reference, current = _normal(300), _normal(200, shift=1.0, seed=1)
    result = column_drift(reference, current, "x", "numeric")
    expected = stats.ks_2samp(reference, current).pvalue
    assert (result.method, result.score, result.drifted) == ("ks", pytest.approx(expected), True)


def test_chisquare_compares_current_counts_with_scaled_reference_counts() -> None:
    reference = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    current = pd.Series(["a"] * 20 + ["b"] * 20 + ["c"] * 10)
    result = column_drift(reference, current, "x", "categorical")
    expected = stats.chisquare([20, 20, 10], [25.0, 15.0, 10.0]).pvalue
    assert (result.method, result.score) == ("chisquare", pytest.approx(expected, rel=1e-12))


def test_z_test_compares_the_share_of_the_first_value() -> None:
    reference = pd.Series(["no"] * 60 + ["yes"] * 40)
    current = pd.Series(["no"] * 30 + ["yes"] * 70)
    result = column_drift(reference, current, "x", "categorical")
    p1, p2, pooled = 0.4, 0.7, 110 / 200
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    assert result.method == "z"
    assert result.score == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))), rel=1e-12)
    assert result.drifted is True


def test_z_test_of_the_same_constant_is_one() -> None:
    result = column_drift(pd.Series(["a"] * 10), pd.Series(["a"] * 5), "x", "categorical")
    assert (result.method, result.score, result.drifted) == ("z", 1.0, False)


def test_psi_fills_empty_bins_like_evidently() -> None:
    reference = pd.Series(["a"] * 900 + ["b"] * 100)
    current = pd.Series(["a"] * 1000)
    result = column_drift(reference, current, "x", "categorical")
    ref_p, cur_p = np.array([0.9, 0.1]), np.array([1.0, 0.0001])
    assert result.psi == pytest.approx(np.sum((ref_p - cur_p) * np.log(ref_p / cur_p)))


def test_column_drift_ignores_nulls_and_infinities() -> None:
    reference = pd.concat([_normal(2000), pd.Series([np.nan, np.inf, -np.inf])])
    current = pd.concat([_normal(1000, seed=1), pd.Series([np.nan, np.inf])])
    clean = column_drift(_normal(2000), _normal(1000, seed=1), "x", "numeric")
    dirty = column_drift(reference, current, "x", "numeric")
    assert dirty.score == pytest.approx(clean.score, rel=1e-12)


def test_column_drift_reads_nullable_and_arrow_numbers_like_numpy_floats() -> None:
    values = [1.0, 2.0, None, 4.0, 7.0, 9.0, 11.0] * 300
    plain = column_drift(pd.Series(values, dtype="float64"), _normal(900), "x", "numeric")
    nullable = column_drift(pd.Series(values, dtype="Float64"), _normal(900), "x", "numeric")
    arrow = column_drift(pd.Series(values, dtype="float64[pyarrow]"), _normal(900), "x", "numeric")
    assert plain.score == nullable.score == arrow.score
    assert plain.n_reference == nullable.n_reference == arrow.n_reference == 1800


# ---------------------------------------------------------------- overrides


def test_column_override_sets_method_and_threshold() -> None:
    reference, current = _normal(3000), _normal(2000, shift=0.05, seed=1)
    result = column_drift(reference, current, "x", "numeric", method="psi", threshold=0.5)
    assert (result.method, result.threshold, result.drifted) == ("psi", 0.5, False)
    assert result.score == result.psi


def test_column_override_refuses_a_method_for_another_kind() -> None:
    with pytest.raises(
        DriftError, match="'carrier': method 'wasserstein' does not apply to a categorical column"
    ):
        column_drift(
            pd.Series(["a", "b"]), pd.Series(["a"]), "carrier", "categorical", method="wasserstein"
        )


def test_dataset_drift_refuses_an_override_for_an_unknown_feature() -> None:
    frame = pd.DataFrame({"x": _normal(20)})
    params = _unchecked_params(columns={"y": ColumnDriftParams(threshold=0.2)})
    with pytest.raises(DriftError, match=r"drift.columns names \['y'\], which are not features"):
        dataset_drift(frame, frame, {"x": "numeric"}, params)


def test_dataset_drift_refuses_a_calendar_column_that_is_not_a_feature() -> None:
    frame = pd.DataFrame({"x": _normal(20)})
    params = _unchecked_params(calendar_columns=("dayofweek",))
    with pytest.raises(DriftError, match=r"drift.calendar_columns names \['dayofweek'\]"):
        dataset_drift(frame, frame, {"x": "numeric"}, params)


def test_drift_params_refuse_an_unknown_method() -> None:
    raw = {"drift": {"columns": {"x": {"method": "wassersten"}}}}
    with pytest.raises(ParamsError, match=r"drift.columns.x.method: Input should be"):
        parse_params(raw)


def test_drift_params_refuse_a_p_value_threshold_of_one() -> None:
    with pytest.raises(ValueError, match="a ks threshold is a p-value: it must be below 1"):
        _params(columns={"x": {"method": "ks", "threshold": 1.5}})


def test_drift_params_refuse_an_invalid_column_name() -> None:
    with pytest.raises(ValueError, match="String should match pattern"):
        _params(calendar_columns=["day of week"])


# ---------------------------------------------------------------- dataset drift


def _frames(n_ref: int = 2000, n_cur: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "a": rng.normal(0, 1, n_ref),
            "b": rng.normal(0, 1, n_ref),
            "c": rng.choice(["x", "y", "z"], n_ref),
            "day_of_week": rng.integers(0, 7, n_ref) * 1.0,
        }
    )
    current = pd.DataFrame(
        {
            "a": rng.normal(1, 1, n_cur),
            "b": rng.normal(0, 1, n_cur),
            "c": rng.choice(["x", "y", "z"], n_cur),
            "day_of_week": rng.integers(0, 3, n_cur) * 1.0,
        }
    )
    return reference, current


KINDS: dict[str, stattests.Kind] = {
    "a": "numeric",
    "b": "numeric",
    "c": "categorical",
    "day_of_week": "numeric",
}


def test_dataset_drift_is_share_of_drifted_features_at_least_threshold() -> None:
    reference, current = _frames()
    result = dataset_drift(reference, current, KINDS, _params(drift_share=1 / 3))
    assert result.summary()["drifted_features"] == ["a", "day_of_week"]
    assert (result.n_drifted, len(result.counted), result.drifted) == (2, 4, True)
    assert dataset_drift(reference, current, KINDS, _params(drift_share=0.75)).drifted is False


def test_dataset_drift_excludes_calendar_columns_and_says_so() -> None:
    reference, current = _frames()
    result = dataset_drift(reference, current, KINDS, _params(calendar_columns=["day_of_week"]))
    assert [c.column for c in result.columns] == ["a", "b", "c"]
    assert result.summary()["excluded"] == [
        {
            "column": "day_of_week",
            "reason": "calendar column: differs between months by construction",
        }
    ]


def test_dataset_drift_table_ranks_most_drifted_first() -> None:
    reference, current = _frames()
    table = dataset_drift(reference, current, KINDS, _params()).table()
    assert set(table["column"].head(2)) == {"a", "day_of_week"}
    assert table["drifted"].tolist() == [True, True, False, False]
    assert table["severity"].is_monotonic_decreasing
    assert {"column", "method", "score", "threshold", "drifted", "psi", "rule"} <= set(table)


# ---------------------------------------------------------------- bad input


def test_feature_missing_from_current_counts_as_drifted_with_message() -> None:
    reference, current = _frames()
    result = dataset_drift(reference, current.drop(columns="b"), KINDS, _params())
    col = next(c for c in result.columns if c.column == "b")
    assert (col.status, col.drifted, col.method) == ("missing_current", True, None)
    assert result.summary()["problems"] == [
        {"column": "b", "message": "'b' is missing from the current batch (counted as drifted)"}
    ]


def test_all_null_current_column_counts_as_drifted_with_message() -> None:
    reference, current = _frames()
    current["b"] = np.nan
    col = next(
        c for c in dataset_drift(reference, current, KINDS, _params()).columns if c.column == "b"
    )
    assert (col.status, col.drifted, col.null_share_current) == ("empty_current", True, 1.0)
    assert col.message == "'b' has no non-null value in the current batch (counted as drifted)"


def test_all_null_reference_column_is_not_tested_nor_counted() -> None:
    reference, current = _frames()
    reference["b"] = np.nan
    result = dataset_drift(reference, current, KINDS, _params())
    assert len(result.counted) == 3
    assert result.summary()["not_tested"] == [
        {"column": "b", "message": "'b' has no non-null value in the reference data: not tested"}
    ]


def test_empty_current_batch_is_refused_with_message() -> None:
    reference, current = _frames()
    with pytest.raises(DriftError, match="the current batch has no rows: nothing to compare"):
        dataset_drift(reference, current.iloc[:0], KINDS, _params())


def test_empty_reference_is_refused_with_message() -> None:
    reference, current = _frames()
    with pytest.raises(DriftError, match="the reference data has no rows"):
        dataset_drift(reference.iloc[:0], current, KINDS, _params())


def test_no_comparable_feature_is_refused_with_message() -> None:
    reference, current = _frames()
    with pytest.raises(DriftError, match="no feature could be compared: 'a' has no non-null"):
        dataset_drift(reference.assign(a=np.nan), current, {"a": "numeric"}, _params())


def test_new_category_is_reported_and_drives_chisquare_to_zero() -> None:
    reference = pd.Series(["a"] * 40 + ["b"] * 40 + ["c"] * 20)
    current = pd.Series(["a"] * 20 + ["b"] * 20 + ["c"] * 5 + ["NEW"] * 5)
    result = column_drift(reference, current, "dest", "categorical")
    assert (result.method, result.score, result.drifted) == ("chisquare", 0.0, True)
    assert result.new_categories == ("NEW",)
    assert result.message == "1 category never seen in the reference: NEW"


def test_new_category_in_large_reference_gives_finite_distances() -> None:
    reference = pd.Series(["a"] * 1500 + ["b"] * 500)
    current = pd.Series(["a"] * 700 + ["b"] * 200 + ["NEW"] * 100)
    result = column_drift(reference, current, "dest", "categorical")
    assert result.method == "jensenshannon"
    assert result.score is not None
    assert 0 < result.score < 1
    assert math.isfinite(result.psi or 0)
    assert result.new_categories == ("NEW",)


def test_numeric_declared_text_column_is_refused_with_message() -> None:
    with pytest.raises(
        DriftError,
        match="column 'carrier' is declared numeric but the reference data has dtype str",
    ):
        column_drift(pd.Series(["UA", "AA"]), pd.Series(["UA"]), "carrier", "numeric")


# ---------------------------------------------------------------- type inference


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([0.5, 1.5, 2.5]), "numeric"),
        (pd.Series(np.arange(10)), "categorical"),
        (pd.Series(np.arange(11)), "numeric"),
        (pd.Series(["a", "b"] * 5), "categorical"),
        (pd.Series([f"t{i}" for i in range(10)]), None),
        (pd.Series([True, False]), "categorical"),
    ],
)
def test_infer_kind_mirrors_evidently(values: pd.Series, expected: str | None) -> None:
    assert infer_kind(values) == expected


# ---------------------------------------------------------------- stage-level parts


def test_performance_drift_compares_newest_month_with_worst_earlier_month() -> None:
    backtest = [
        {"month": "2013-07", "roc_auc": 0.80},
        {"month": "2013-08", "roc_auc": 0.78},
        {"month": "2013-09", "roc_auc": 0.75},
    ]
    result = drift.performance_drift(backtest, "2013-09", "roc_auc", max_drop=0.02)
    assert result["available"] is True
    assert result["backtest_worst"] == 0.78
    assert result["drop_below_worst"] == pytest.approx(0.03)
    assert result["drifted"] is True
    assert drift.performance_drift(backtest, "2013-09", "roc_auc", 0.05)["drifted"] is False


def test_performance_drift_treats_lower_log_loss_as_better() -> None:
    backtest = [{"month": "2013-08", "log_loss": 0.40}, {"month": "2013-09", "log_loss": 0.45}]
    result = drift.performance_drift(backtest, "2013-09", "log_loss", max_drop=0.02)
    assert (result["drop_below_worst"], result["drifted"]) == (pytest.approx(0.05), True)


def test_performance_drift_without_earlier_backtest_month_is_not_available() -> None:
    result = drift.performance_drift([{"month": "2013-09", "roc_auc": 0.7}], "2013-09",
                                     "roc_auc", 0.02)  # fmt: skip
    assert (result["available"], result["drifted"]) == (False, False)
    assert result["message"].startswith("backtest has no roc_auc for any earlier month")


def test_distribution_shares_sum_to_one_with_nulls() -> None:
    reference = pd.Series([1.0, 2.0, np.nan, 4.0])
    current = pd.Series([1.0, 1.0, 1.0, np.nan])
    table = drift_plots.distribution(reference, current, "numeric")
    assert table["reference"].sum() == pytest.approx(1.0)
    assert table["current"].sum() == pytest.approx(1.0)
    assert table.loc[table["bin"] == "(null)", "current"].item() == 0.25


def test_distribution_pools_rare_categories() -> None:
    reference = pd.Series([f"c{i}" for i in range(20)] * 5)
    table = drift_plots.distribution(reference, reference, "categorical")
    assert len(table) == drift_plots.DISTRIBUTION_CATEGORIES + 1
    assert table["bin"].iloc[-1] == "(other)"
    assert table["reference"].sum() == pytest.approx(1.0)


# ---------------------------------------------------------------- the stage on tmp_path


MONTHS = ("2013-07", "2013-08", "2013-09")
#: A backtest month's numbers besides its ROC AUC (whole, as evaluate writes them).
BACKTEST_NUMBERS = {"n": 400.0, "late_share": 0.2, "pr_auc": 0.5, "log_loss": 0.4, "brier": 0.15}


def _feature_table(n_per_month: int = 1500, shift: float = 0.0) -> pd.DataFrame:
    """A tiny stand-in for outputs/features.parquet: every declared feature, month and late."""
    rng = np.random.default_rng(7)
    frames = []
    for i, month in enumerate(MONTHS):
        current = i == len(MONTHS) - 1
        frame = pd.DataFrame(
            {
                c: (
                    rng.choice(["AA", "UA", "DL"], n_per_month)
                    if k == "categorical"
                    else rng.normal(shift if current and c == "temp" else 0.0, 1.0, n_per_month)
                )
                for c, k in stattests.declared_kinds().items()
            }
        )
        frame.insert(0, "month", month)
        frame["late"] = (rng.random(n_per_month) < (0.3 if current else 0.2)).astype(np.int8)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class _Pipeline:
    """Scores rows from one feature, like the model's predict_proba."""

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-rows["temp"].to_numpy()))
        return np.column_stack([1 - p, p])


@pytest.fixture
def stage(tmp_path: Path, params: Params, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A work tree whose params point into tmp_path, with features, predictions and backtest."""
    from flightdelay.core import model_io

    out = tmp_path / "outputs"
    paths = {k: str(v) for k, v in params.paths.model_dump().items()}
    paths |= {k: str(out / Path(v).relative_to("outputs")) for k, v in paths.items()
              if v.startswith("outputs")}  # fmt: skip
    raw = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    raw["paths"] = paths
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    features = _feature_table(shift=1.0)
    out.mkdir()
    features.to_parquet(out / "features.parquet")
    current = features[features["month"] == MONTHS[-1]]
    scores = _Pipeline().predict_proba(current)[:, 1]
    current.assign(score=scores).to_parquet(out / "predictions.parquet")
    august = features[features["month"] == "2013-08"]
    august.assign(score=_Pipeline().predict_proba(august)[:, 1])[["month", "score"]].to_parquet(
        out / "backtest_predictions.parquet"
    )
    tested = [
        {"month": "2013-08", "roc_auc": 0.80, "train_months": ["2013-07"]},
        {"month": "2013-09", "roc_auc": 0.79, "train_months": ["2013-07", "2013-08"]},
    ]
    write_json(
        out / "metrics" / "backtest.json",
        Backtest.of([BacktestMonth(**(BACKTEST_NUMBERS | m)) for m in tested]).to_json(),
    )
    bundle = model_io.ModelBundle(
        _Pipeline(),  # type: ignore[arg-type]
        ModelMetadata.parse(
            {**MODEL_METADATA, "train_months": list(MONTHS[:-1]), "eval_month": MONTHS[-1]},
            "model.json",
        ),
        None,  # type: ignore[arg-type]
    )
    monkeypatch.setattr(model_io, "load_model_bundle", lambda _: bundle)
    return tmp_path


def test_main_writes_metrics_table_plot_data_and_figures(
    stage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drift.main(["--params", str(stage / "params.yaml")]) == 0
    out = stage / "outputs" / "drift"
    summary = json.loads((out / "drift.json").read_text())
    assert summary["current_month"] == "2013-09"
    assert summary["reference_months"] == ["2013-07", "2013-08"]
    assert "temp" in summary["dataset"]["drifted_features"]
    excluded = [e["column"] for e in summary["dataset"]["excluded"]]
    assert excluded == ["day_of_week", "days_to_holiday"]
    assert summary["label"]["current_late_rate"] > summary["label"]["reference_late_rate"]
    assert summary["prediction"]["drifted"] is True
    assert summary["prediction"]["reference_source"] == "backtest"
    assert summary["prediction"]["reference_score_months"] == ["2013-08"]
    assert summary["performance"]["available"] is True
    assert summary["performance"]["drifted"] is False
    table = json.loads((out / "features.json").read_text())
    assert table["rows"][0][0] == "temp"
    assert any("day_of_week: excluded (calendar" in n for n in table["notes"])
    assert pd.read_csv(out / "features.csv")["column"].iloc[0] == "temp"
    for name in ("drift_scores", "late_rate", "performance", "distributions", "scores"):
        assert len(pd.read_csv(out / "plots" / f"{name}.csv")) > 0
    for name in ("distributions", "drift_scores", "late_rate", "performance", "scores"):
        assert (out / "png" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    out_text = capsys.readouterr().out
    assert out_text.startswith("drift 2013-09 vs 2013-07..2013-08: ")
    assert "(backtest reference)" in out_text


def test_main_reports_missing_features_file(
    stage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stage / "outputs" / "features.parquet").unlink()
    assert drift.main(["--params", str(stage / "params.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "features.parquet: feature table (run `dvc repro featurize`) not found" in err


def test_main_reports_predictions_of_another_month(
    stage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stage / "outputs" / "predictions.parquet"
    pd.read_parquet(path).assign(month="2013-08").to_parquet(path)
    assert drift.main(["--params", str(stage / "params.yaml")]) == 1
    assert "the predictions are for ['2013-08'], not the current batch 2013-09" in (
        capsys.readouterr().err
    )


def test_main_reports_a_model_older_than_the_newest_batch(
    stage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stage / "outputs" / "features.parquet"
    features = pd.read_parquet(path)
    newer = features[features["month"] == "2013-09"].assign(month="2013-10")
    pd.concat([features, newer]).to_parquet(path)
    assert drift.main(["--params", str(stage / "params.yaml")]) == 1
    assert "the model was evaluated on 2013-09 but the newest batch is 2013-10" in (
        capsys.readouterr().err
    )


def test_main_reports_missing_backtest(stage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (stage / "outputs" / "metrics" / "backtest.json").unlink()
    assert drift.main(["--params", str(stage / "params.yaml")]) == 1
    assert "backtest.json: backtest metrics (run `dvc repro evaluate`) not found" in (
        capsys.readouterr().err
    )


def test_main_a_backtest_without_by_month_is_one_line_naming_file_and_key(
    stage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stage / "outputs" / "metrics" / "backtest.json"
    path.write_text(json.dumps({"months": json.loads(path.read_text())["months"]}))
    assert drift.main(["--params", str(stage / "params.yaml")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"error: {path}: not a valid backtest metrics file (by_month: Field required); "
        "re-run `dvc repro evaluate`"
    )


def test_main_reports_missing_backtest_predictions(
    stage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stage / "outputs" / "backtest_predictions.parquet").unlink()
    assert drift.main(["--params", str(stage / "params.yaml")]) == 1
    assert (
        "backtest_predictions.parquet: backtest predictions (run `dvc repro evaluate`) not found"
        in capsys.readouterr().err
    )


def test_main_refuses_backtest_predictions_of_another_run(
    stage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stage / "outputs" / "backtest_predictions.parquet"
    pd.read_parquet(path).assign(month="2013-07").to_parquet(path)
    assert drift.main(["--params", str(stage / "params.yaml")]) == 1
    assert (
        "the backtest predictions are for ['2013-07'] but backtest.json has ['2013-08'] before "
        "2013-09: re-run `dvc repro evaluate`" in capsys.readouterr().err
    )


# ---------------------------------------------------------------- prediction-drift reference


def _scores(features: pd.DataFrame, month: str, shift: float = 0.0) -> pd.DataFrame:
    rows = features[features["month"] == month]
    return pd.DataFrame({"month": month, "score": _Pipeline().predict_proba(rows)[:, 1] + shift})


def _drift_of_scores(
    backtest_scores: pd.DataFrame | None,
    score_reference: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> drift.DriftReport:
    features = _feature_table(shift=1.0)
    return drift.drift(
        features,
        _scores(features, "2013-09"),
        [],
        reference_months=MONTHS[:-1],
        current_month="2013-09",
        kinds=stattests.declared_kinds(),
        params=_params(),
        score_reference=score_reference,
        backtest_scores=backtest_scores,
    )


def _in_sample(rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(_Pipeline().predict_proba(rows)[:, 1])


def test_drift_compares_scores_with_the_earlier_backtest_months() -> None:
    features = _feature_table(shift=1.0)
    earlier = pd.concat([_scores(features, "2013-07", 0.01), _scores(features, "2013-08", 0.02)])
    later = _scores(features, "2013-09", 0.5)  # the current month: never its own reference

    def refuse(rows: pd.DataFrame) -> np.ndarray:
        raise AssertionError("in-sample scores used although backtest scores exist")

    report = _drift_of_scores(pd.concat([earlier, later]), score_reference=refuse)
    expected = column_drift(
        earlier["score"].reset_index(drop=True),
        _scores(features, "2013-09")["score"],
        "score",
        "numeric",
    )
    prediction = report.to_json()["prediction"]
    assert prediction["score"] == expected.score
    assert prediction["reference_source"] == "backtest"
    assert prediction["reference_score_months"] == ["2013-07", "2013-08"]
    assert prediction["n_reference_scores"] == len(earlier)
    assert prediction["reference"].startswith("out-of-sample backtest scores of 2013-07, 2013-08")
    assert prediction["reference_mean_score"] == pytest.approx(earlier["score"].mean())


def test_drift_falls_back_to_in_sample_scores_without_an_earlier_backtest_month() -> None:
    features = _feature_table(shift=1.0)
    report = _drift_of_scores(_scores(features, "2013-09"), score_reference=_in_sample)
    reference = features[features["month"].isin(MONTHS[:-1])]
    expected = column_drift(
        pd.Series(_in_sample(reference)), _scores(features, "2013-09")["score"], "score", "numeric"
    )
    prediction = report.to_json()["prediction"]
    assert prediction["score"] == expected.score
    assert prediction["reference_source"] == "in_sample"
    assert prediction["reference_score_months"] == ["2013-07", "2013-08"]
    assert prediction["reference"] == (
        "the model's scores on its training rows (in-sample): no out-of-sample backtest month "
        "before 2013-09 (evaluate.backtest_months >= 2 gives one)"
    )


def test_drift_without_backtest_scores_says_its_reference_is_in_sample() -> None:
    prediction = _drift_of_scores(None, score_reference=_in_sample).to_json()["prediction"]
    assert prediction["reference_source"] == "in_sample"
    assert prediction["reference"] == "the model's scores on its training rows (in-sample)"


def test_drift_without_any_score_reference_skips_prediction_drift() -> None:
    features = _feature_table()
    prediction = _drift_of_scores(_scores(features, "2013-09").iloc[:0]).to_json()["prediction"]
    assert prediction == {"available": False, "drifted": False}


def test_drift_refuses_backtest_scores_without_a_score_column() -> None:
    with pytest.raises(
        DriftError, match=r"the backtest predictions lack the column\(s\) \['score'\]"
    ):
        _drift_of_scores(pd.DataFrame({"month": ["2013-08"]}), score_reference=_in_sample)

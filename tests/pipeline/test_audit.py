"""The leakage audit: per-feature AUCs and missing rows' late share, time travel, the stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from flightdelay.core.context import build_context
from flightdelay.core.features import FEATURE_COLUMNS, build_features
from flightdelay.core.flights import to_minutes
from flightdelay.core.io import DataFileError
from flightdelay.core.params import AuditParams, FeaturizeParams
from flightdelay.pipeline import audit as audit_module
from flightdelay.pipeline import featurize as featurize_module
from flightdelay.pipeline.audit import (
    audit,
    audit_features,
    cut_context,
    read_audit,
    single_feature_auc,
    time_travel,
)
from flightdelay.pipeline.featurize import featurize
from synthetic import FEATURIZE, raw_tables, work_tree

PARAMS = AuditParams(
    max_missing_auc=0.65,
    max_single_auc=0.80,
    max_missing_late_share=0.9,
    min_missing_rows=30,
    bins=64,
    time_travel_cutoffs=4,
    time_travel_hours=6,
)
LENIENT = PARAMS.model_copy(
    update={"max_single_auc": 0.99, "max_missing_auc": 0.8}
)  # synthetic rain (and gusts only with it)
HONEST = FeaturizeParams(
    **(FEATURIZE | {"unknown_aircraft_share": 0.05, "weather_at": "prediction_time"})
)


@pytest.fixture(scope="module")
def synthetic() -> dict[str, Any]:
    tables = raw_tables(months=(1, 2), cancelled_share=0.05)
    context = build_context(
        tables["flights"], tables["weather"], tables["planes"], tables["airports"]
    )
    return {"flights": tables["flights"], "context": context}


def _table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    late = (rng.random(n) < 0.2).astype(np.int8)
    return pd.DataFrame(
        {
            "flight_id": [f"f{i}" for i in range(n)],
            "month": np.where(np.arange(n) < n * 3 // 4, "2013-01", "2013-02"),
            "noise": rng.normal(size=n),
            "carrier": rng.choice(["AA", "UA", "DL"], n),
            "late": late,
        }
    )


# ---------------------------------------------------------------- per feature


def test_single_feature_auc_is_one_for_a_copy_of_the_label_and_near_half_for_noise() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(4000) < 0.3).astype(float)
    copy = pd.Series(y + rng.normal(0, 0.01, 4000))
    noise = pd.Series(rng.normal(size=4000))
    assert single_feature_auc(copy[:3000], y[:3000], copy[3000:], y[3000:], False, 64) > 0.999
    auc = single_feature_auc(noise[:3000], y[:3000], noise[3000:], y[3000:], False, 64)
    assert auc is not None
    assert abs(auc - 0.5) < 0.06


def test_audit_features_lists_every_feature_with_both_aucs_and_passes_honest_ones() -> None:
    rows = audit_features(_table(), "2013-02", PARAMS)
    assert [r.feature for r in rows] == ["noise", "carrier"]
    assert [r.kind for r in rows] == ["numeric", "categorical"]
    assert all(r.single_auc is not None and r.flags == [] for r in rows)
    assert all(r.missing_auc is None and r.missing_rows == 0 for r in rows)


def test_audit_features_names_a_feature_missing_exactly_when_late() -> None:
    table = _table()
    cancelled = (table["late"] == 1) & (np.arange(len(table)) % 5 == 0)
    table["tail_leg_of_day"] = np.where(cancelled, np.nan, 1.0)
    leaky = next(r for r in audit_features(table, "2013-02", PARAMS) if r.flags)
    assert leaky.feature == "tail_leg_of_day"
    assert leaky.missing_late_share == 1.0
    assert leaky.flags == [
        f"100.0% of its {int(cancelled.sum())} missing rows are late (limit 90%)"
    ]


def test_audit_features_names_a_missingness_that_separates_and_a_feature_that_is_the_label() -> (
    None
):
    table = _table()
    table["peek"] = table["late"] * 50.0 + np.random.default_rng(2).normal(0, 1, len(table))
    table["gone"] = np.where(table["late"] == 0, np.nan, 1.0)  # missing on every on-time row
    flags = {r.feature: r.flags for r in audit_features(table, "2013-02", PARAMS) if r.flags}
    assert sorted(flags) == ["gone", "peek"]
    assert flags["peek"] == ["a model of it alone has ROC AUC 1.000 on 2013-02 (limit 0.80)"]
    assert flags["gone"][0].startswith("its missingness alone has ROC AUC 0.000 (limit 0.65)")


def test_audit_features_few_missing_rows_are_listed_not_judged() -> None:
    table = _table()
    first_late = np.flatnonzero(table["late"] == 1)[:10]
    table["rare"] = 0.0
    table.loc[first_late, "rare"] = np.nan  # 10 missing rows (< min_missing_rows), all late
    row = next(r for r in audit_features(table, "2013-02", PARAMS) if r.feature == "rare")
    assert (row.missing_rows, row.missing_late_share, row.flags) == (10, 1.0, [])


# ---------------------------------------------------------------- time travel


def test_cut_context_forgets_departures_and_weather_after_the_cutoff(synthetic) -> None:
    context = synthetic["context"]
    dep = to_minutes(context.departures["dep_at"])
    at = float(np.nanmedian(dep))
    cut = cut_context(context, at)
    kept = to_minutes(cut.departures["dep_at"])
    assert np.array_equal(np.isfinite(kept), dep < at)
    assert cut.departures["dep_delay"].notna().sum() == int((dep < at).sum())
    assert to_minutes(cut.weather["time_hour_local"]).max() <= at
    assert len(cut.departures) == len(context.departures)  # the published schedule stays


def test_time_travel_honest_features_do_not_change(synthetic) -> None:
    flights = synthetic["flights"].query("month == 2")
    result = time_travel(flights, synthetic["context"], HONEST, PARAMS)
    assert len(result.cutoffs) == PARAMS.time_travel_cutoffs
    assert result.flights_checked > 0
    assert result.changed == []


def test_time_travel_names_weather_observed_at_the_scheduled_hour(synthetic) -> None:
    flights = synthetic["flights"].query("month == 2")
    legacy = HONEST.model_copy(update={"weather_at": "scheduled_hour"})
    changed = {
        c.feature for c in time_travel(flights, synthetic["context"], legacy, PARAMS).changed
    }
    assert "temp" in changed  # the synthetic temperature changes every hour


def test_time_travel_names_a_feature_that_reads_the_flights_own_outcome(
    synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    def peeking(flights: pd.DataFrame, context: Any, params: FeaturizeParams) -> pd.DataFrame:
        built = build_features(flights, context, params)
        if "arr_delay" in flights.columns:
            built["distance"] = flights["arr_delay"].to_numpy(dtype=float)
        return built

    monkeypatch.setattr(audit_module, "build_features", peeking)
    flights = synthetic["flights"].query("month == 2")
    result = time_travel(flights, synthetic["context"], HONEST, PARAMS)
    assert [c.feature for c in result.changed] == ["distance"]
    assert result.changed[0].flights == result.flights_checked  # every one of them


# ---------------------------------------------------------------- the whole and the stage


def test_audit_counts_what_the_label_policy_does(synthetic) -> None:
    flights = synthetic["flights"].copy()
    cancelled = flights["dep_time"].isna()
    flights.loc[cancelled & (flights.index % 2 == 0), "tailnum"] = None
    features = featurize(flights, synthetic["context"], HONEST)
    report = audit(features, flights, synthetic["context"], HONEST, LENIENT)
    counts = report.label[0]
    assert counts.scope == "all months"
    assert (
        counts.without_tailnum
        == counts.without_tailnum_cancelled
        == int(flights["tailnum"].isna().sum())
    )
    assert counts.modelled == len(features) == len(flights) - counts.without_tailnum
    assert counts.positives == int(features["late"].sum())
    assert counts.positives_cancelled == int((cancelled & flights["tailnum"].notna()).sum())
    assert 0 < counts.aircraft_unknown == int(features["tail_leg_of_day"].isna().sum())
    assert report.label[1].scope == report.eval_month == "2013-02"


def _stage_tree(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1, 2)))
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["featurize"] = HONEST.model_dump()
    raw["audit"] = LENIENT.model_dump()
    Path("params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def test_main_writes_the_typed_audit_and_passes(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _stage_tree(tmp_path, repo_root, monkeypatch)
    assert featurize_module.main([]) == 0
    assert audit_module.main([]) == 0
    report = read_audit(Path("outputs/metrics/audit.json"))
    assert report.passed
    assert report.failures == []
    assert {f.feature for f in report.features} == set(FEATURE_COLUMNS)
    assert "time travel:" in capsys.readouterr().out


def test_main_fails_naming_a_deliberately_leaky_feature(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A feature made of the flight's own arrival: featurize writes it, the audit stops the run."""

    def leaky(flights: pd.DataFrame, context: Any, params: FeaturizeParams) -> pd.DataFrame:
        built = build_features(flights, context, params)
        if "arr_delay" in flights.columns:  # training rows carry the outcome; serving's do not
            built["origin_waiting"] = flights["arr_delay"].fillna(999).to_numpy(dtype=float)
        return built

    _stage_tree(tmp_path, repo_root, monkeypatch)
    monkeypatch.setattr(featurize_module, "build_features", leaky)
    monkeypatch.setattr(audit_module, "build_features", leaky)
    assert featurize_module.main([]) == 0
    assert audit_module.main([]) == 1
    err = capsys.readouterr().err
    assert "error: the leakage audit failed" in err
    assert "origin_waiting: a model of it alone has ROC AUC 1.000 on 2013-02 (limit 0.99)" in err
    assert "origin_waiting: changes for" in err
    assert "when rows after their prediction time" in err
    report = read_audit(Path("outputs/metrics/audit.json"))
    assert not report.passed


def test_main_without_features_says_run_featurize(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _stage_tree(tmp_path, repo_root, monkeypatch)
    assert audit_module.main([]) == 1
    assert "outputs/features.parquet: feature table not found (run featurize)" in (
        capsys.readouterr().err
    )
    assert not Path("outputs/metrics/audit.json").exists()


def test_read_audit_malformed_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"eval_month": "2013-02"}))
    with pytest.raises(DataFileError, match=r"audit.json: not a leakage audit \(thresholds: Field"):
        read_audit(path)

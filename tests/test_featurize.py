from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flightdelay.features import FEATURE_COLUMNS, FeatureError, build_context
from flightdelay.featurize import featurize, flight_ids, main
from flightdelay.model_io import read_context
from flightdelay.params import FeaturizeParams
from synthetic import FEATURIZE, raw_tables, work_tree


def _featurize(cancelled: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables = raw_tables(months=(1,), cancelled_share=0.2)
    context = build_context(
        tables["flights"], tables["weather"], tables["planes"], tables["airports"]
    )
    params = FeaturizeParams(**(FEATURIZE | {"cancelled": cancelled}))
    return tables["flights"], featurize(tables["flights"], context, params)


def test_featurize_has_keys_features_and_target_in_order() -> None:
    flights, frame = _featurize("late")
    assert list(frame.columns) == ["flight_id", "month", *FEATURE_COLUMNS, "late"]
    assert len(frame) == len(flights)
    assert frame["month"].unique().tolist() == ["2013-01"]
    assert frame["flight_id"].is_unique


def test_featurize_cancelled_late_labels_them_late_and_drop_leaves_them_out() -> None:
    flights, late = _featurize("late")
    _, dropped = _featurize("drop")
    cancelled = flights["arr_delay"].isna().to_numpy()
    assert cancelled.sum() > 0
    assert (late.loc[cancelled, "late"] == 1).all()
    assert len(dropped) == len(flights) - cancelled.sum()
    assert set(dropped["flight_id"]) == set(late.loc[~cancelled, "flight_id"])


def test_flight_ids_are_readable_keys() -> None:
    frame = pd.DataFrame(
        {
            "year": [2013],
            "month": [1],
            "day": [2],
            "origin": ["EWR"],
            "carrier": ["UA"],
            "flight": [1545],
            "sched_dep_time": [515],
        }
    )
    assert flight_ids(frame).tolist() == ["2013-01-02_EWR_UA1545_0515"]


def test_featurize_duplicate_flights_are_refused_with_examples() -> None:
    tables = raw_tables(months=(1,))
    flights = pd.concat([tables["flights"], tables["flights"].head(1)], ignore_index=True)
    context = build_context(flights, tables["weather"], tables["planes"], tables["airports"])
    with pytest.raises(FeatureError, match=r"not unique .*2013-01-01_EWR_AA100"):
        featurize(flights, context, FeaturizeParams(**FEATURIZE))


def test_main_writes_features_and_context(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1, 2)))
    assert main([]) == 0
    frame = pd.read_parquet("outputs/features.parquet")
    assert sorted(frame["month"].unique()) == ["2013-01", "2013-02"]
    context = read_context(Path("outputs/context"))
    assert len(context.departures) == len(frame)


def test_main_refuses_data_that_failed_validation(
    tmp_path: Path,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1,)))
    Path("outputs/validation/summary.json").write_text(json.dumps({"success": False}))
    assert main([]) == 1
    assert "failed validation; not building features" in capsys.readouterr().err
    assert not Path("outputs/features.parquet").exists()


def test_main_without_validation_summary_says_run_validate(
    tmp_path: Path,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1,)))
    Path("outputs/validation/summary.json").unlink()
    assert main([]) == 1
    assert "validation summary (run `flightdelay validate`) not found" in capsys.readouterr().err

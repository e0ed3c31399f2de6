from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.artifacts import directory_md5
from flightdelay.core.features import FEATURE_COLUMNS
from flightdelay.core.flights import OUTCOME_COLUMNS
from flightdelay.core.model_io import load_model_bundle, read_provenance
from flightdelay.core.params import TrainParams
from flightdelay.pipeline import featurize as featurize_stage
from flightdelay.pipeline.train import (
    TrainError,
    best_f1_threshold,
    check_features,
    data_hash,
    main,
    score,
    split_months,
    train,
)
from synthetic import TRAIN, feature_table, work_tree

PARAMS = TrainParams(**TRAIN)


@pytest.fixture(scope="module")
def trained():
    features = feature_table()
    return features, train(features, PARAMS)


def test_split_months_holds_out_the_newest_month() -> None:
    frame = pd.DataFrame({"month": ["2013-02", "2013-01", "2013-03", "2013-02"]})
    assert split_months(frame) == (["2013-01", "2013-02"], "2013-03")


def test_split_months_with_one_month_says_two_are_needed() -> None:
    with pytest.raises(TrainError, match=r"at least two months .* \['2013-01'\]"):
        split_months(pd.DataFrame({"month": ["2013-01"]}))


def test_train_fits_on_months_before_the_newest(trained) -> None:
    features, result = trained
    assert result.train_months == ["2013-01", "2013-02", "2013-03"]
    assert result.eval_month == "2013-04"
    assert result.train_metrics["train_rows"] == (features["month"] < "2013-04").sum()
    assert 0 < result.threshold < 1


def test_fitted_pipeline_never_takes_outcome_columns_or_target(trained) -> None:
    _, result = trained
    forbidden = {*OUTCOME_COLUMNS, "late", "arr_delay", "flight_id", "month", "tailnum", "flight"}
    seen = set(result.pipeline.feature_names_in_)
    seen |= set(result.pipeline[0].feature_names_in_)
    seen |= set(result.pipeline[-1].feature_names_in_)
    assert seen == set(FEATURE_COLUMNS)
    assert not seen & forbidden
    assert list(result.pipeline.feature_names_in_) == list(FEATURE_COLUMNS)


def test_train_twice_gives_identical_scores(trained) -> None:
    features, first = trained
    second = train(features, PARAMS)
    np.testing.assert_array_equal(score(first.pipeline, features), score(second.pipeline, features))
    assert first.threshold == second.threshold


def test_train_single_class_says_so() -> None:
    features = feature_table().assign(late=0)
    with pytest.raises(TrainError, match=r"single class \(\[0\]\)"):
        train(features, PARAMS)


def test_check_features_names_missing_columns() -> None:
    with pytest.raises(TrainError, match=r"lacks column\(s\) \['late'\] .*dvc repro featurize"):
        check_features(feature_table().drop(columns="late"))


def test_best_f1_threshold_separates_perfectly_separable_scores() -> None:
    y = np.array([0, 0, 0, 1, 1])
    threshold = best_f1_threshold(y, np.array([0.1, 0.2, 0.3, 0.7, 0.9]))
    assert threshold == 0.7


def test_data_hash_reads_outs_md5_and_names_a_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "data.dvc"
    good.write_text("outs:\n- md5: abc.dir\n  path: data\n")
    assert data_hash(good) == "abc.dir"
    good.write_text("outs: []\n")
    with pytest.raises(ValueError, match=r"data.dvc: has no outs\[0\].md5"):
        data_hash(good)


def test_main_saves_a_verified_bundle_with_provenance(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1, 2, 3)))
    assert featurize_stage.main([]) == 0
    assert main(["--no-mlflow"]) == 0
    bundle = load_model_bundle("outputs/model")
    meta = bundle.metadata
    assert meta["train_months"] == ["2013-01", "2013-02"]
    assert meta["data_md5"] == "0123456789abcdef0123456789abcdef.dir"
    assert [c["name"] for c in meta["input_schema"]] == list(FEATURE_COLUMNS)
    assert bundle.featurize_params.lead_minutes == 60
    assert sorted(p.name for p in Path("outputs/model/context").iterdir()) == [
        "airports.parquet",
        "departures.parquet",
        "planes.parquet",
        "weather.parquet",
    ]
    written = json.loads(Path("outputs/model/model.json").read_text())
    assert not {"mlflow_run_id", "git_commit"} & set(written)
    provenance = read_provenance(Path("outputs/model"), meta["sha256"])
    assert provenance is not None
    assert provenance.mlflow_run_id is None  # --no-mlflow
    assert provenance.host
    assert provenance.trained_at


@pytest.mark.slow  # two trainings logged to MLflow: ~40 s
def test_main_twice_gives_the_model_directory_dvc_records(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trainings of the same code, params and data in two work trees, each logged as its own
    MLflow run: the model directory hashes alike (what dvc.lock records); the run ids live in the
    sidecar, which the hash leaves out."""
    hashes, runs = [], []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        monkeypatch.chdir(work_tree(root, repo_root, months=(1, 2, 3)))
        assert featurize_stage.main([]) == 0
        assert main([]) == 0
        model_dir = Path("outputs/model")
        hashes.append(directory_md5(model_dir))
        sha = json.loads((model_dir / "model.json").read_text())["sha256"]
        provenance = read_provenance(model_dir, sha)
        assert provenance is not None
        runs.append(provenance.mlflow_run_id)
    assert hashes[0] == hashes[1]
    assert None not in runs
    assert runs[0] != runs[1]


def test_main_without_features_says_run_featurize(
    tmp_path: Path,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(work_tree(tmp_path, repo_root, months=(1,)))
    assert main(["--no-mlflow"]) == 1
    assert "feature table not found (run `dvc repro featurize`)" in capsys.readouterr().err


def test_fit_uses_fixed_threads_whatever_the_cpus_and_the_callers_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HistGradientBoosting's gradient sums depend on the thread count (on the real data 1 and
    2 threads give different model.skops), so fits run on FIT_THREADS threads everywhere: more
    than this machine's CPUs, and despite a caller's lower limit."""
    import os

    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_limits

    from flightdelay.pipeline.train import FIT_THREADS, fixed_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    many = (os.cpu_count() or 1) + 1
    with threadpool_limits(limits=1, user_api="openmp"):
        assert _openmp_effective_n_threads() == 1
        with fixed_threads(many):
            assert _openmp_effective_n_threads() == many
        assert _openmp_effective_n_threads() == 1
    assert "OMP_NUM_THREADS" not in os.environ
    assert FIT_THREADS == 2  # what main's dvc.lock was recorded with

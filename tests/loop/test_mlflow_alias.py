"""mlflow_alias: the released stage mirrored as an MLflow registry alias (store in tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flightdelay.loop import mlflow_alias
from flightdelay.loop.release import Release

FIRST = Release(
    artifact="flight-delay",
    version="v0.1.0",
    stage="staging",
    tag="flight-delay#staging#1",
    version_tag="flight-delay@v0.1.0",
    commit="a" * 40,
    model_path="outputs/model",
    model_md5="1" * 32 + ".dir",
    data_md5="d" * 32 + ".dir",
    mlflow_run_id="train-run-1",
)


def replace(release: Release, **changes: str) -> Release:
    return release.model_copy(update=changes)


def write_release(out: Path, release: Release) -> Path:
    (out / "model").mkdir(parents=True, exist_ok=True)
    (out / "model" / "model.json").write_text(json.dumps({"version": release.version}))
    (out / "release.json").write_text(json.dumps(release.to_json()))
    return out


@pytest.fixture
def client():
    import mlflow

    # conftest points MLFLOW_TRACKING_URI at tmp_path; explicit, since an earlier test's
    # mlflow.set_tracking_uri() would otherwise win
    return mlflow.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def test_main_creates_a_version_with_provenance_and_the_stage_alias(tmp_path: Path, client) -> None:
    out = write_release(tmp_path / "release", FIRST)
    assert mlflow_alias.main(["--release", str(out)]) == 0
    version = client.get_model_version_by_alias("flight-delay", "staging")
    assert {
        k: version.tags[k]
        for k in (
            "git_commit",
            "gto_version",
            "gto_version_tag",
            "gto_tag_staging",
            "data_md5",
            "training_run_id",
        )
    } == {
        "git_commit": "a" * 40,
        "gto_version": "v0.1.0",
        "gto_version_tag": "flight-delay@v0.1.0",
        "gto_tag_staging": "flight-delay#staging#1",
        "data_md5": "d" * 32 + ".dir",
        "training_run_id": "train-run-1",
    }
    logged = Path(client.download_artifacts(version.run_id, "model/model.json", str(tmp_path)))
    assert json.loads(logged.read_text()) == {"version": "v0.1.0"}


def test_promoting_the_same_version_reuses_it_and_moves_the_alias(tmp_path: Path, client) -> None:
    assert mlflow_alias.main(["--release", str(write_release(tmp_path / "s", FIRST))]) == 0
    prod = replace(FIRST, stage="prod", tag="flight-delay#prod#2")
    assert mlflow_alias.main(["--release", str(write_release(tmp_path / "p", prod))]) == 0
    staging = client.get_model_version_by_alias("flight-delay", "staging")
    in_prod = client.get_model_version_by_alias("flight-delay", "prod")
    assert str(staging.version) == str(in_prod.version) == "1"
    assert in_prod.tags["gto_tag_prod"] == "flight-delay#prod#2"


def test_rollback_points_prod_back_at_the_earlier_version(tmp_path: Path, client) -> None:
    second = replace(
        FIRST,
        version="v0.2.0",
        version_tag="flight-delay@v0.2.0",
        model_md5="2" * 32 + ".dir",
        stage="prod",
        tag="flight-delay#prod#3",
    )
    first_prod = replace(FIRST, stage="prod", tag="flight-delay#prod#2")
    rolled_back = replace(first_prod, tag="flight-delay#prod#4")
    for n, release in enumerate((first_prod, second, rolled_back)):
        assert mlflow_alias.main(["--release", str(write_release(tmp_path / str(n), release))]) == 0
    in_prod = client.get_model_version_by_alias("flight-delay", "prod")
    assert (str(in_prod.version), in_prod.tags["gto_version"]) == ("1", "v0.1.0")
    assert in_prod.tags["gto_tag_prod"] == "flight-delay#prod#4"
    assert len(client.search_model_versions("name = 'flight-delay'")) == 2


def test_main_without_a_release_names_the_file(tmp_path: Path, capsys) -> None:
    assert mlflow_alias.main(["--release", str(tmp_path)]) == 1
    assert "release.json: release description not found" in capsys.readouterr().err

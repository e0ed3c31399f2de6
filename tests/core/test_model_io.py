from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from flightdelay.core.context import build_context
from flightdelay.core.features import build_features
from flightdelay.core.io import sha256_file
from flightdelay.core.model_io import (
    CONTEXT_DIR,
    ModelBundleError,
    Provenance,
    dump_pipeline,
    load_model_bundle,
    provenance_path,
    read_provenance,
    write_context,
    write_metadata,
    write_provenance,
)
from flightdelay.core.params import TrainParams
from flightdelay.pipeline.train import score, train
from output_fixtures import MODEL_METADATA
from synthetic import TRAIN, feature_table, raw_tables


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    features = feature_table()
    result = train(features, TrainParams(**TRAIN))
    path = dump_pipeline(result.pipeline, directory)
    tables = raw_tables(months=(1, 2, 3, 4))
    write_context(
        build_context(tables["flights"], tables["weather"], tables["planes"], tables["airports"]),
        directory / CONTEXT_DIR,
    )
    write_metadata(
        directory,
        {
            **MODEL_METADATA,  # a whole model.json, with this model's own facts
            "sha256": sha256_file(path),
            "threshold": result.threshold,
            "train_months": result.train_months,
            "eval_month": result.eval_month,
            "train_metrics": result.train_metrics,
            "input_schema": [],
            "featurize": {
                "target_delay_minutes": 30,
                "cancelled": "late",
                "lead_minutes": 60,
                "window_hours": 2,
            },
        },
    )
    return directory


def test_load_model_bundle_round_trip_scores_like_features_built_from_its_context(
    model_dir: Path,
) -> None:
    pipeline, info, context = load_model_bundle(model_dir)
    assert isinstance(pipeline, Pipeline)
    flights = raw_tables(months=(4,))["flights"].head(20)
    one = build_features(flights.iloc[[3]], context, load_model_bundle(model_dir).featurize_params)
    batch = build_features(flights, context, load_model_bundle(model_dir).featurize_params)
    assert score(pipeline, one)[0] == score(pipeline, batch)[3]
    assert 0 < info.threshold < 1


def test_load_model_bundle_refuses_a_model_whose_sha256_differs(
    model_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(model_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    with (copy / "model.skops").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(
        ModelBundleError,
        match=r"model.skops: sha256 \w+ does not match .*"
        r"model.json .*refusing to load",
    ):
        load_model_bundle(copy)


def test_load_model_bundle_refuses_untrusted_types_even_with_matching_hash(tmp_path: Path) -> None:
    import skops.io as sio

    pipeline = Pipeline([("f", FunctionTransformer(json.dumps))])
    sio.dump(pipeline, tmp_path / "model.skops")
    write_metadata(
        tmp_path,
        {
            **MODEL_METADATA,
            "sha256": sha256_file(tmp_path / "model.skops"),
            "threshold": 0.5,
        },
    )
    with pytest.raises(ModelBundleError, match="holds untrusted types") as exc:
        load_model_bundle(tmp_path)
    assert "json.dumps" in str(exc.value)


def test_dump_pipeline_refuses_types_outside_the_allow_list(tmp_path: Path) -> None:
    pipeline = Pipeline([("f", FunctionTransformer(json.dumps))])
    with pytest.raises(ModelBundleError, match=r"types not in TRUSTED_TYPES: \['json.dumps'\]"):
        dump_pipeline(pipeline, tmp_path)
    assert not (tmp_path / "model.skops").exists()


def test_load_model_bundle_missing_directory_says_run_train(tmp_path: Path) -> None:
    with pytest.raises(ModelBundleError, match=r"model directory not found .*dvc repro train"):
        load_model_bundle(tmp_path / "nope")


def test_load_model_bundle_incomplete_metadata_names_the_keys(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(
        ModelBundleError,
        match=r"lacks key\(s\) \['sha256', 'featurize', "
        r"'input_schema'\]",
    ):
        load_model_bundle(tmp_path)


def test_load_model_bundle_missing_context_table_is_named(model_dir: Path, tmp_path: Path) -> None:
    for name in ("model.skops", "model.json"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    with pytest.raises(ModelBundleError, match=r"context/departures.parquet: context table not"):
        load_model_bundle(tmp_path)


def test_dump_pipeline_same_model_gives_same_bytes_and_scores(
    model_dir: Path, tmp_path: Path
) -> None:
    """A reproduced model can be verified by hash: skops' memory ids and timestamps are gone."""
    pipeline = load_model_bundle(model_dir).pipeline
    again = dump_pipeline(pipeline, tmp_path / "again")
    assert sha256_file(again) == sha256_file(model_dir / "model.skops")
    (tmp_path / "again" / CONTEXT_DIR).symlink_to(model_dir / CONTEXT_DIR)
    (tmp_path / "again" / "model.json").write_text((model_dir / "model.json").read_text())
    flights = raw_tables(months=(4,))["flights"].head(50)
    bundle = load_model_bundle(tmp_path / "again")
    features = build_features(flights, bundle.context, bundle.featurize_params)
    assert (score(bundle.pipeline, features) == score(pipeline, features)).all()


def test_read_provenance_ignores_a_sidecar_of_another_model(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write_provenance(model, Provenance(sha256="a" * 64, git_commit="c" * 40))
    assert read_provenance(model, "a" * 64) == Provenance(sha256="a" * 64, git_commit="c" * 40)
    assert read_provenance(model, "b" * 64) is None
    provenance_path(model).write_text("{not json")
    assert read_provenance(model, "a" * 64) is None


def test_provenance_sidecar_lives_beside_the_model_directory_not_in_it(model_dir: Path) -> None:
    """Nothing hashed, listed in SHA256SUMS or signed may depend on a run: it is outside."""
    assert provenance_path(model_dir) == model_dir.parent / f"{model_dir.name}.provenance.json"
    assert provenance_path("outputs/model") == Path("outputs/model.provenance.json")

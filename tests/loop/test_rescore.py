"""rescore: the promotion's own evidence from raw tables, checked against what the pipeline's
stages compute on the same data (an honest run's outputs and the re-scoring agree), and its
refusal of data that is not what data.dvc records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.context import build_context
from flightdelay.core.model_io import ModelBundle
from flightdelay.core.outputs import ModelMetadata
from flightdelay.core.params import FeaturizeParams, Params, TrainParams
from flightdelay.loop import rescore
from flightdelay.pipeline.evaluate import classification_metrics
from flightdelay.pipeline.train import input_schema, score, train
from output_fixtures import MODEL_METADATA, PASSED_VALIDATION
from synthetic import FEATURIZE, TRAIN, feature_table, raw_tables, work_tree

MONTHS = (1, 2, 3, 4)


@pytest.fixture(scope="module")
def model() -> tuple[ModelBundle, pd.DataFrame]:
    """A model trained as the train stage does, as a bundle, and the feature table."""
    features = feature_table(MONTHS)
    result = train(features, TrainParams(**TRAIN))
    tables = raw_tables(months=MONTHS)
    context = build_context(
        tables["flights"], tables["weather"], tables["planes"], tables["airports"]
    )
    metadata = {
        **MODEL_METADATA,
        "threshold": result.threshold,
        "featurize": dict(FEATURIZE),
        "input_schema": input_schema(features),
        "sha256": "s" * 64,
    }
    bundle = ModelBundle(result.pipeline, ModelMetadata.parse(metadata, "model.json"), context)
    return bundle, features


@pytest.fixture(scope="module")
def month() -> rescore.Month:
    tables = raw_tables(months=MONTHS)
    return rescore.month_of(
        tables["flights"],
        tables["weather"],
        tables["planes"],
        tables["airports"],
        FeaturizeParams(**FEATURIZE),
    )


def test_month_of_holds_out_the_newest_month_with_its_target(
    month: rescore.Month, model: Any
) -> None:
    _, features = model
    newest = features[features["month"] == "2013-04"]
    assert month.name == "2013-04"
    assert len(month.y) == len(newest)
    assert month.y.sum() == newest["late"].sum()


def test_scores_of_agrees_with_the_pipeline_s_own_scores(month: rescore.Month, model: Any) -> None:
    bundle, features = model
    expected = score(bundle.pipeline, features[features["month"] == "2013-04"])

    np.testing.assert_allclose(rescore.scores_of(bundle, month), expected)


def test_challenger_of_computes_the_metric_and_slices_the_gate_judges(
    month: rescore.Month, model: Any, params: Params
) -> None:
    bundle, _ = model
    scores = rescore.scores_of(bundle, month)
    rule = params.gate.model_copy(update={"slice_min_rows": 50})

    challenger = rescore.challenger_of(month, scores, bundle.threshold, rule, PASSED_VALIDATION)

    assert challenger.metrics is not None
    assert challenger.metrics.eval_month == "2013-04"
    expected = classification_metrics(month.y, scores, bundle.threshold)["roc_auc"]
    assert challenger.metrics.roc_auc == pytest.approx(expected)
    assert challenger.slices is not None
    carriers = {e.carrier: e for e in challenger.slices.carrier}
    assert set(carriers) == {"AA", "UA", "DL"}
    assert all(e.roc_auc is not None for e in carriers.values())  # each slice has >= 50 flights


def test_challenger_of_gives_the_majority_baseline_as_evaluate_does(
    month: rescore.Month, model: Any, params: Params
) -> None:
    bundle, features = model
    scores = rescore.scores_of(bundle, month)
    earlier = features[features["month"] < "2013-04"]
    majority = int(earlier["late"].mean() >= 0.5)

    challenger = rescore.challenger_of(
        month, scores, bundle.threshold, params.gate, PASSED_VALIDATION
    )

    assert month.majority == majority
    assert challenger.metrics is not None
    assert challenger.metrics.baseline_accuracy == pytest.approx(np.mean(month.y == majority))


def test_challenger_of_slices_every_column_evaluate_writes(
    month: rescore.Month, model: Any, params: Params
) -> None:
    bundle, _ = model
    scores = rescore.scores_of(bundle, month)
    rule = params.gate.model_copy(update={"slice_columns": ("carrier",)})

    challenger = rescore.challenger_of(month, scores, bundle.threshold, rule, PASSED_VALIDATION)

    assert challenger.slices is not None
    assert {e.origin for e in challenger.slices.origin} == set(month.flights["origin"])


def test_compare_scores_of_a_model_with_itself_is_a_zero_delta(
    month: rescore.Month, model: Any, params: Params
) -> None:
    bundle, _ = model
    scores = rescore.scores_of(bundle, month)

    c = rescore.compare_scores(
        month,
        scores,
        scores,
        (0.3, 0.3),
        params.gate,
        params.bootstrap.model_copy(update={"samples": 20}),
        "prod",
        "abc",
        None,
    )

    d = c.metrics["roc_auc"]
    assert (d.delta, d.low, d.high) == (0.0, 0.0, 0.0)
    assert c.notes == ["both models re-scored by the promotion job on 2013-04"]


def test_read_month_refuses_data_that_is_not_what_data_dvc_records(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightdelay.core.data import write_manifest
    from flightdelay.core.params import load_params

    work_tree(tmp_path, repo_root, MONTHS)
    monkeypatch.chdir(tmp_path)
    write_manifest(Path("data"))
    (tmp_path / "data.dvc").write_text(
        (tmp_path / "data.dvc")
        .read_text()
        .replace("0123456789abcdef0123456789abcdef.dir", _dir_md5(Path("data")))
    )
    params = load_params("params.yaml")
    assert rescore.read_month(params, FeaturizeParams(**FEATURIZE)).name == "2013-04"
    batch = tmp_path / "data" / "flights" / "2013-04.csv"
    batch.write_text(batch.read_text().replace(",AA,", ",UA,", 5))

    with pytest.raises(rescore.RescoreError, match=r"2013-04.csv: md5 .* but data.dvc records"):
        rescore.read_month(params, FeaturizeParams(**FEATURIZE))


def _dir_md5(data: Path) -> str:
    from flightdelay.core.artifacts import directory_md5

    return directory_md5(data)

"""FastPredictor: bit-for-bit the scores of pipeline.predict_proba, or a refusal that says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from flightdelay.core.features import FEATURE_COLUMNS
from flightdelay.core.params import TrainParams
from flightdelay.pipeline.train import make_pipeline
from flightdelay.serving.fast_predict import (
    VECTORISED_MAX_ROWS,
    FastPredictor,
    UnsupportedPipelineError,
)
from serving_bundle import scorer_pipeline, scorer_rows
from synthetic import TRAIN, feature_table


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return scorer_pipeline()


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return scorer_rows()


def expected(pipeline: Pipeline, rows: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(rows)[:, 1]


def test_fast_predict_fixture_model_has_categorical_and_missing_value_splits(
    pipeline: Pipeline,
) -> None:
    forest = FastPredictor.compile(pipeline).forest
    assert forest.categorical.any()
    assert forest.depth >= 3


def test_fast_predict_equals_the_pipeline_on_a_large_batch(
    pipeline: Pipeline, rows: pd.DataFrame
) -> None:
    assert len(rows) > VECTORISED_MAX_ROWS
    fast = FastPredictor.compile(pipeline)
    np.testing.assert_array_equal(fast.predict_proba(rows), expected(pipeline, rows))


@pytest.mark.parametrize("size", [1, 2, 3, 8, VECTORISED_MAX_ROWS, VECTORISED_MAX_ROWS + 1])
def test_fast_predict_equals_the_pipeline_on_small_batches(
    pipeline: Pipeline, rows: pd.DataFrame, size: int
) -> None:
    fast = FastPredictor.compile(pipeline)
    want = expected(pipeline, rows)
    for start in range(0, 120, size):
        part = rows.iloc[start : start + size]
        np.testing.assert_array_equal(fast.predict_proba(part), want[start : start + size])


def test_fast_predict_ignores_column_order_and_extra_columns(
    pipeline: Pipeline, rows: pd.DataFrame
) -> None:
    shuffled = rows.iloc[:10, ::-1].assign(flight_id="x")
    fast = FastPredictor.compile(pipeline)
    np.testing.assert_array_equal(fast.predict_proba(shuffled), expected(pipeline, rows.head(10)))


def test_fast_predict_of_no_rows_is_empty(pipeline: Pipeline, rows: pd.DataFrame) -> None:
    assert FastPredictor.compile(pipeline).predict_proba(rows.head(0)).shape == (0,)


def test_fast_predict_with_two_threads_equals_one(pipeline: Pipeline, rows: pd.DataFrame) -> None:
    one, two = FastPredictor.compile(pipeline), FastPredictor.compile(pipeline, n_threads=2)
    np.testing.assert_array_equal(one.predict_proba(rows), two.predict_proba(rows))


def test_compile_refuses_a_pipeline_of_another_shape() -> None:
    other = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    other.fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    with pytest.raises(UnsupportedPipelineError, match="first step is a StandardScaler"):
        FastPredictor.compile(other)


def test_compile_refuses_other_encoder_settings(pipeline: Pipeline) -> None:
    changed = make_pipeline(TrainParams(**TRAIN))
    changed.steps[0][1].transformers[0][1].set_params(unknown_value=-1, encoded_missing_value=-2)
    features = feature_table()
    changed.fit(features.loc[:, list(FEATURE_COLUMNS)], features["late"])
    with pytest.raises(UnsupportedPipelineError, match="OrdinalEncoder settings differ"):
        FastPredictor.compile(changed)


def test_vectorised_walk_equals_the_compiled_kernel_on_any_codes(
    pipeline: Pipeline, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightdelay.serving import fast_predict

    fast = FastPredictor.compile(pipeline)
    x = fast.matrix(rows.head(VECTORISED_MAX_ROWS))
    categorical = [j for j, c in enumerate(fast.columns) if c.codes is not None]
    # codes the encoders never emit: negative, unknown to the forest, fractional
    x[::3, categorical] = -1.0
    x[1::3, categorical] = 200.0
    x[2::6, categorical] = 1.5
    walked = fast.raw(x)
    monkeypatch.setattr(fast_predict, "VECTORISED_MAX_ROWS", 0)
    np.testing.assert_array_equal(walked, fast.raw(x))

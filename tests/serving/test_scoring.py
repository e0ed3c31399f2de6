"""TreeliteScorer: the pipeline's scores within SCORE_TOLERANCE from treelite (compiled by tl2cgen
or interpreted by GTIL), from a feature frame or from feature_arrays' columns; or a refusal that
says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from flightdelay.core.features import FEATURE_COLUMNS
from flightdelay.core.params import TrainParams
from flightdelay.pipeline.train import make_pipeline
from flightdelay.serving import scoring
from flightdelay.serving.scoring import SCORE_TOLERANCE, TreeliteScorer, UnsupportedPipelineError
from serving_bundle import scorer_pipeline, scorer_rows
from synthetic import TRAIN, feature_table

needs_compiler = pytest.mark.skipif(
    scoring.c_compiler() is None, reason="gcc not installed: tl2cgen cannot compile"
)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return scorer_pipeline()


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return scorer_rows()


@pytest.fixture(scope="module")
def compiled(pipeline: Pipeline) -> TreeliteScorer:
    if scoring.c_compiler() is None:
        pytest.skip("gcc not installed: tl2cgen cannot compile")
    return TreeliteScorer.compile(pipeline, key="test-scoring", compiler=True)


def expected(pipeline: Pipeline, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(pipeline.predict_proba(rows)[:, 1])


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_TOLERANCE)


def as_arrays(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """What feature_arrays gives: object arrays (None when missing) and float64 arrays."""
    out: dict[str, Any] = {}
    for name in rows.columns:
        column = rows[name]
        if column.dtype.kind == "f":
            out[name] = column.to_numpy(np.float64)
        else:
            out[name] = column.astype(object).where(column.notna(), None).to_numpy(object)
    return out


@needs_compiler
def test_scoring_compiled_equals_the_pipeline_within_tolerance(
    pipeline: Pipeline, rows: pd.DataFrame, compiled: TreeliteScorer
) -> None:
    assert compiled.runtime == "treelite-compiled"
    assert_close(compiled.predict_proba(rows), expected(pipeline, rows))


def test_scoring_interpreted_equals_the_pipeline_within_tolerance(
    pipeline: Pipeline, rows: pd.DataFrame
) -> None:
    gtil = TreeliteScorer.compile(pipeline, key="test-scoring", compiler=False)
    assert gtil.runtime == "treelite-gtil"
    assert_close(gtil.predict_proba(rows), expected(pipeline, rows))


@needs_compiler
@pytest.mark.parametrize("size", [1, 2, 7, 33])
def test_scoring_small_batches_equal_the_large_one_exactly(
    rows: pd.DataFrame, compiled: TreeliteScorer, size: int
) -> None:
    whole = compiled.predict_proba(rows)
    for start in range(0, 100, size):
        part = rows.iloc[start : start + size]
        np.testing.assert_array_equal(compiled.predict_proba(part), whole[start : start + size])


@needs_compiler
def test_scoring_feature_arrays_score_as_the_frame(
    rows: pd.DataFrame, compiled: TreeliteScorer
) -> None:
    np.testing.assert_array_equal(
        compiled.predict_proba(as_arrays(rows)), compiled.predict_proba(rows)
    )


def test_scoring_ignores_column_order_and_extra_columns(
    pipeline: Pipeline, rows: pd.DataFrame
) -> None:
    gtil = TreeliteScorer.compile(pipeline, key="test-scoring", compiler=False)
    shuffled = rows.iloc[:10, ::-1].assign(flight_id="x")
    assert_close(gtil.predict_proba(shuffled), expected(pipeline, rows.head(10)))


def test_scoring_of_no_rows_is_empty(pipeline: Pipeline, rows: pd.DataFrame) -> None:
    gtil = TreeliteScorer.compile(pipeline, key="test-scoring", compiler=False)
    assert gtil.predict_proba(rows.head(0)).shape == (0,)


@needs_compiler
def test_scoring_compiles_once_per_model_key(
    pipeline: Pipeline, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tl2cgen

    calls: list[Any] = []
    real = tl2cgen.export_lib
    monkeypatch.setattr(tl2cgen, "export_lib", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = TreeliteScorer.compile(pipeline, key="test-once", compiler=True)
    second = TreeliteScorer.compile(pipeline, key="test-once", compiler=True)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.predict_proba(rows), second.predict_proba(rows))


@needs_compiler
def test_scoring_large_calls_use_the_batch_threads_with_the_same_scores(
    pipeline: Pipeline, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call of BATCH_THREAD_ROWS rows or more goes to the batch predictor (its own thread
    count), a smaller one to the single-thread predictor; both run the same library, so the
    scores are identical, not merely within tolerance."""
    used: list[tuple[int, int]] = []
    real = scoring.compiled_predictor

    class Recording:
        def __init__(self, predictor: Any, threads: int) -> None:
            self.predictor, self.threads = predictor, threads

        def predict(self, matrix: Any) -> Any:
            used.append((self.threads, matrix.shape[0]))
            return self.predictor.predict(matrix)

    def recorded(model: Any, key: str, n_threads: int) -> Recording:
        return Recording(real(model, key, n_threads), n_threads)

    monkeypatch.setattr(scoring, "compiled_predictor", recorded)
    many = pd.concat([rows] * -(-scoring.BATCH_THREAD_ROWS // len(rows)), ignore_index=True)
    many = many.head(scoring.BATCH_THREAD_ROWS)
    two = TreeliteScorer.compile(pipeline, key="test-threads", compiler=True, batch_threads=2)
    one = TreeliteScorer.compile(pipeline, key="test-threads", compiler=True)
    large, small = two.predict_proba(many), two.predict_proba(many.head(len(many) - 1))
    assert used == [(2, len(many)), (1, len(many) - 1)]
    np.testing.assert_array_equal(large, one.predict_proba(many))
    np.testing.assert_array_equal(small, one.predict_proba(many.head(len(many) - 1)))
    assert_close(large, expected(pipeline, many))


@needs_compiler
@pytest.mark.parametrize(("n_threads", "batch_threads"), [(1, 2), (2, 2)])
def test_scoring_threads_hold_under_a_one_thread_openmp_limit(
    pipeline: Pipeline,
    rows: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
    n_threads: int,
    batch_threads: int,
) -> None:
    """tl2cgen refuses a predictor of more threads than its OpenMP runtime's limit; the service
    lowers every OpenMP runtime to FLIGHTDELAY_MODEL_THREADS (threadpoolctl), as may
    OMP_NUM_THREADS=1: the predictors (small calls' and large calls') still get their threads,
    and the scorer never falls back to the pipeline for it."""
    import threadpoolctl
    import tl2cgen

    from flightdelay.serving import compiled as compiled_cache

    key = f"test-limit-{n_threads}"
    model = TreeliteScorer.compile(pipeline, key=key, compiler=True).model
    library = compiled_cache.library(model, key, scoring.COMPILE_UNITS)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        with pytest.raises(tl2cgen.TL2cgenError, match="nthread cannot exceed 1"):
            tl2cgen.Predictor(str(library), nthread=2, verbose=False)
        scorer = TreeliteScorer.compile(
            pipeline, key=key, n_threads=n_threads, compiler=True, batch_threads=batch_threads
        )
    assert scorer.runtime == "treelite-compiled"
    assert "large calls use 1 thread" not in caplog.text
    many = pd.concat([rows] * -(-scoring.BATCH_THREAD_ROWS // len(rows)), ignore_index=True)
    assert_close(scorer.predict_proba(many), expected(pipeline, many))
    assert_close(scorer.predict_proba(rows), expected(pipeline, rows))


def test_scoring_without_a_compiler_interprets(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(scoring, "c_compiler", lambda: None)
    monkeypatch.setenv("FLIGHTDELAY_SCORER_CACHE", str(tmp_path))  # and no compiled library
    assert TreeliteScorer.compile(pipeline, key="test-scoring").runtime == "treelite-gtil"


def test_scoring_refuses_a_pipeline_of_another_shape() -> None:
    other = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    other.fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    with pytest.raises(UnsupportedPipelineError, match="last step is a LogisticRegression"):
        TreeliteScorer.compile(other, key="other")


def test_scoring_refuses_other_encoder_settings() -> None:
    changed = make_pipeline(TrainParams(**TRAIN))
    changed.steps[0][1].transformers[0][1].set_params(unknown_value=-1, encoded_missing_value=-2)
    features = feature_table()
    changed.fit(features.loc[:, list(FEATURE_COLUMNS)], features["late"])
    with pytest.raises(UnsupportedPipelineError, match="OrdinalEncoder settings differ"):
        TreeliteScorer.compile(changed, key="changed")

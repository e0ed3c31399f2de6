"""The compiled scorer library kept per model: compiled once, loaded again only when its record
(library sha256, model sha256, tl2cgen/treelite versions) matches, else compiled again or, with
no compiler, interpreted; and the image builds it in a stage that has gcc."""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from flightdelay.core.model_io import load_model_bundle
from flightdelay.core.params import TrainParams
from flightdelay.pipeline.train import train
from flightdelay.serving import compiled, model_service, scoring
from flightdelay.serving.compiled import CACHE_ENV, LIBRARY, RECORD, CompiledRecord, sha256_of
from flightdelay.serving.scoring import SCORE_TOLERANCE, TreeliteScorer
from serving_bundle import build_model_dir
from synthetic import TRAIN, feature_table

pytestmark = pytest.mark.skipif(
    scoring.c_compiler() is None, reason="gcc not installed: tl2cgen cannot compile"
)

KEY = "1" * 64  # stands for a model's sha256
OTHER = "2" * 64


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return train(feature_table(), TrainParams(**TRAIN)).pipeline


@pytest.fixture(scope="module")
def model(pipeline: Pipeline) -> Any:
    import treelite

    return treelite.sklearn.import_model(pipeline[-1])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, and a process that has compiled nothing yet (as after a restart)."""
    directory = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(directory))
    monkeypatch.setattr(compiled, "_private", {})
    return directory


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """One entry per tl2cgen compilation."""
    import tl2cgen

    calls: list[Any] = []
    real = tl2cgen.export_lib
    monkeypatch.setattr(tl2cgen, "export_lib", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def record_of(cache: Path, key: str = KEY) -> CompiledRecord:
    return CompiledRecord.model_validate_json((compiled.entry(cache, key) / RECORD).read_bytes())


def tamper(library: Path) -> None:
    data = bytearray(library.read_bytes())
    data[-1] ^= 0xFF
    library.write_bytes(bytes(data))


def test_compiled_library_is_compiled_once_and_recorded(
    model: Any, cache: Path, compiles: list[Any]
) -> None:
    first = compiled.library(model, KEY, 2)
    second = compiled.library(model, KEY, 2)
    assert first == second == compiled.entry(cache, KEY) / LIBRARY
    assert len(compiles) == 1
    record = record_of(cache)
    assert record.model_sha256 == KEY
    assert record.library_sha256 == sha256_of(first)
    assert (record.tl2cgen, record.treelite) == compiled.runtime_versions()


def test_compiled_restart_loads_the_cached_library_without_compiling(
    pipeline: Pipeline, cache: Path, compiles: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = feature_table().head(50)
    before = TreeliteScorer.compile(pipeline, key=KEY, compiler=True)
    monkeypatch.setattr(compiled, "_private", {})  # a new process
    after = TreeliteScorer.compile(pipeline, key=KEY, compiler=True)
    assert len(compiles) == 1
    assert after.runtime == "treelite-compiled"
    want = pipeline.predict_proba(rows)[:, 1]
    assert np.max(np.abs(after.predict_proba(rows) - want)) <= SCORE_TOLERANCE
    np.testing.assert_array_equal(after.predict_proba(rows), before.predict_proba(rows))


def test_compiled_library_removed_while_the_process_runs_is_compiled_again(
    pipeline: Pipeline, cache: Path, compiles: list[Any]
) -> None:
    """A cache cleaned under a running service: its next scorer compiles, never 'not found'."""
    import shutil

    TreeliteScorer.compile(pipeline, key=KEY, compiler=True)
    shutil.rmtree(cache)
    assert TreeliteScorer.compile(pipeline, key=KEY, compiler=True).runtime == "treelite-compiled"
    assert len(compiles) == 2


def test_compiled_tampered_library_is_refused_and_compiled_again(
    model: Any, cache: Path, compiles: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    library = compiled.library(model, KEY, 2)
    recorded = record_of(cache).library_sha256
    tamper(library)
    with caplog.at_level(logging.INFO):
        again = compiled.library(model, KEY, 2)
    assert len(compiles) == 2
    where = re.escape(str(compiled.entry(cache, KEY)))
    assert re.search(
        rf"compiled scorer in {where} refused: model\.so sha256 [0-9a-f]{{12}} differs from its "
        "record's",
        caplog.text,
    )
    assert sha256_of(again) == record_of(cache).library_sha256 == recorded


def test_compiled_library_of_another_model_is_refused(
    model: Any, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compiled.library(model, KEY, 2)
    compiled.entry(cache, KEY).rename(compiled.entry(cache, OTHER))
    assert compiled.cached(OTHER) is None
    assert "refused: compiled from model 111111111111, not 222222222222" in caplog.text


def test_compiled_library_of_other_tl2cgen_or_treelite_versions_is_refused(
    model: Any, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compiled.library(model, KEY, 2)
    record = record_of(cache).model_copy(update={"tl2cgen": "0.0.1"})
    (compiled.entry(cache, KEY) / RECORD).write_text(record.model_dump_json())
    assert compiled.cached(KEY) is None
    assert "refused: compiled by tl2cgen 0.0.1 / treelite" in caplog.text


def test_compiled_library_without_a_record_is_refused(
    model: Any, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compiled.library(model, KEY, 2)
    (compiled.entry(cache, KEY) / RECORD).unlink()
    assert compiled.cached(KEY) is None
    assert "refused: scorer.json unreadable (FileNotFoundError)" in caplog.text


def test_compiled_cache_writable_by_others_is_neither_loaded_nor_written(
    model: Any, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compiled.library(model, KEY, 2)
    cache.chmod(0o777)
    assert compiled.cached(KEY) is None
    assert f"refused: {cache} is writable by others (mode drwxrwxrwx)" in caplog.text
    elsewhere = compiled.library(model, KEY, 2)
    assert cache not in elsewhere.parents
    assert elsewhere.is_file()


def test_compiled_unusable_cache_compiles_into_a_temporary_directory(
    model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    library = compiled.library(model, KEY, 2)
    assert library.is_file()
    assert blocker not in library.parents
    assert f"scorer cache {blocker / 'cache'} not usable" in caplog.text


def test_compiled_without_a_compiler_a_verified_library_is_loaded(
    pipeline: Pipeline, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    TreeliteScorer.compile(pipeline, key=KEY, compiler=True)  # the image's build stage
    monkeypatch.setattr(compiled, "_private", {})
    monkeypatch.setattr(scoring, "c_compiler", lambda: None)  # the image: no gcc
    assert TreeliteScorer.compile(pipeline, key=KEY).runtime == "treelite-compiled"


def test_compiled_without_a_compiler_a_tampered_library_means_gtil(
    pipeline: Pipeline, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    TreeliteScorer.compile(pipeline, key=KEY, compiler=True)
    tamper(compiled.entry(cache, KEY) / LIBRARY)
    monkeypatch.setattr(compiled, "_private", {})
    monkeypatch.setattr(scoring, "c_compiler", lambda: None)
    assert TreeliteScorer.compile(pipeline, key=KEY).runtime == "treelite-gtil"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("compiled"), repo_root)


def test_compiled_library_of_other_trees_under_the_right_record_fails_the_start_up_check(
    model_dir: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The record vouches for the file, not for its scores: the start-up comparison with the
    pipeline still refuses a library of other trees recorded under this model's sha256."""
    import treelite

    bundle = load_model_bundle(model_dir)
    key = str(bundle.metadata["sha256"])
    other = copy.deepcopy(bundle.pipeline[-1])
    other._baseline_prediction = other._baseline_prediction + 0.5
    compiled.library(treelite.sklearn.import_model(other), key, 2)
    service = model_service.ModelService(bundle)
    assert service.predictor == "pipeline"
    assert "treelite scorer refused: differs from the pipeline by" in caplog.text


def test_compile_scorer_fills_the_cache_the_service_then_loads(
    model_dir: Path, tmp_path: Path, cache: Path, compiles: list[Any], capsys: Any
) -> None:
    target = tmp_path / "opt-scorer"
    assert compiled.main(["--model-dir", str(model_dir), "--cache", str(target)]) == 0
    key = str(load_model_bundle(model_dir).metadata["sha256"])
    where = compiled.entry(target, key)
    assert f"compiled scorer of model {key[:12]} in {where}" in capsys.readouterr().out
    assert compiled.cached(key, target) == where / LIBRARY
    assert len(compiles) == 1


def test_compile_scorer_without_a_compiler_says_so(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(scoring, "c_compiler", lambda: None)
    assert compiled.main(["--model-dir", str(model_dir), "--cache", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: no C compiler (gcc) to compile the scorer with\n"


def test_compiled_image_builds_the_library_with_gcc_and_serves_it_without(repo_root: Path) -> None:
    """The Dockerfile's scorer stage and the service agree on the command, the directory and the
    variable; the image's final stage installs no compiler."""
    dockerfile = (repo_root / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    scorer = next(s for s in stages if s.startswith("build AS scorer"))
    final = stages[-1]
    assert "apt-get install --yes --no-install-recommends gcc" in scorer
    assert "flightdelay compile-scorer --model-dir /opt/model --cache /opt/scorer" in scorer
    assert "COPY ${MODEL_DIR} /opt/model" in scorer  # compiled from the model the image serves
    assert "COPY --from=scorer /opt/scorer /opt/scorer" in final
    assert f"{CACHE_ENV}=/opt/scorer" in final
    assert "FLIGHTDELAY_MODEL_DIR=/opt/model" in final
    assert "gcc" not in final

"""core/outputs: the typed JSON outputs are read and written in one place, byte for byte, and a
bad file fails with one line naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flightdelay.core.drift_summary import DriftSummary
from flightdelay.core.io import DataFileError, write_json
from flightdelay.core.outputs import (
    Backtest,
    EvaluateMetrics,
    Importance,
    ModelMetadata,
    Output,
    Release,
    Slices,
    ValidationSummary,
)
from output_fixtures import (
    BACKTEST,
    EVALUATION,
    IMPORTANCE,
    MODEL_METADATA,
    PASSED_VALIDATION,
    RELEASE,
    SLICES,
    failed_validation,
)


def test_evaluate_metrics_round_trip_is_byte_identical(tmp_path: Path) -> None:
    written, typed = tmp_path / "as-the-stage-wrote-it.json", tmp_path / "typed.json"
    write_json(written, EVALUATION)
    EvaluateMetrics.read(written).write(typed)
    assert typed.read_bytes() == written.read_bytes()


def test_evaluate_metrics_of_a_month_with_one_class_keeps_ranking_metrics_absent(
    tmp_path: Path,
) -> None:
    one_class = {k: v for k, v in EVALUATION.items() if k not in {"roc_auc", "pr_auc", "brier",
                                                                   "log_loss"}}  # fmt: skip
    metrics = EvaluateMetrics.parse(one_class, "evaluate.json")
    assert metrics.roc_auc is None
    assert metrics.metric("roc_auc") is None
    assert metrics.to_json() == one_class  # no null keys appear on the way back


def test_evaluate_metrics_the_repositorys_own_file_parses(repo_root: Path) -> None:
    path = repo_root / "outputs" / "metrics" / "evaluate.json"
    if not path.is_file():
        pytest.skip(f"{path} not produced yet (`make repro`)")
    assert EvaluateMetrics.read(path).to_json() == json.loads(path.read_text())


def test_evaluate_metrics_missing_key_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.json"
    write_json(path, {k: v for k, v in EVALUATION.items() if k != "threshold"})
    with pytest.raises(DataFileError) as caught:
        EvaluateMetrics.read(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert "threshold" in message
    assert "dvc repro evaluate" in message


def test_evaluate_metrics_wrong_type_and_unknown_key_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"evaluate\.json.*roc_auc"):
        EvaluateMetrics.parse({**EVALUATION, "roc_auc": "high"}, tmp_path / "evaluate.json")
    with pytest.raises(DataFileError, match=r"evaluate\.json.*roc_aux"):
        EvaluateMetrics.parse({**EVALUATION, "roc_aux": 0.8}, tmp_path / "evaluate.json")


def test_evaluate_metrics_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.json"
    path.write_text("{not json")
    with pytest.raises(DataFileError, match=r"evaluate\.json"):
        EvaluateMetrics.read(path)


def test_evaluate_metrics_metric_by_name_refuses_an_unknown_name() -> None:
    metrics = EvaluateMetrics.parse(EVALUATION, "evaluate.json")
    assert metrics.metric("roc_auc") == EVALUATION["roc_auc"]
    with pytest.raises(KeyError):
        metrics.metric("eval_month")
    with pytest.raises(KeyError):
        metrics.metric("roc_aux")


# ---------------------------------------------------------------- every output type

#: (type, a whole example as its stage writes it, a required key, a key and a mistyped value)
EXAMPLES: list[tuple[type[Output], dict[str, Any], str, tuple[str, Any]]] = [
    (ModelMetadata, MODEL_METADATA, "train_months", ("threshold", "high")),
    (Backtest, BACKTEST, "by_month", ("months", {"2013-07": 1})),
    (Slices, SLICES, "origin", ("carrier", [{"carrier": "EV", "n": "many"}])),
    (Importance, IMPORTANCE, "features", ("features", [{"feature": "carrier"}])),
    (ValidationSummary, PASSED_VALIDATION, "rows", ("success", "maybe")),
    (ValidationSummary, failed_validation(), "groups", ("failures", [{"table": "flights"}])),
]
IDS = ["model", "backtest", "slices", "importance", "validation", "failed-validation"]


@pytest.mark.parametrize(("output", "example", "required", "mistyped"), EXAMPLES, ids=IDS)
def test_output_round_trip_is_byte_identical(
    tmp_path: Path, output: type[Output], example: dict[str, Any], required: str, mistyped: Any
) -> None:
    written, typed = tmp_path / "as-the-stage-wrote-it.json", tmp_path / "typed.json"
    write_json(written, example)
    output.read(written).write(typed)
    assert typed.read_bytes() == written.read_bytes()


@pytest.mark.parametrize(("output", "example", "required", "mistyped"), EXAMPLES, ids=IDS)
def test_output_missing_key_is_one_line_naming_file_and_key(
    tmp_path: Path, output: type[Output], example: dict[str, Any], required: str, mistyped: Any
) -> None:
    path = tmp_path / "output.json"
    write_json(path, {k: v for k, v in example.items() if k != required})
    with pytest.raises(DataFileError) as caught:
        output.read(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a valid {output.what} (")
    assert f"{required}: Field required" in message
    assert message.endswith(f"; re-run `dvc repro {output.dvc_stage}`")


@pytest.mark.parametrize(("output", "example", "required", "mistyped"), EXAMPLES, ids=IDS)
def test_output_mistyped_value_is_one_line_naming_file_and_key(
    tmp_path: Path,
    output: type[Output],
    example: dict[str, Any],
    required: str,
    mistyped: tuple[str, Any],
) -> None:
    key, value = mistyped
    path = tmp_path / "output.json"
    write_json(path, {**example, key: value})
    with pytest.raises(DataFileError) as caught:
        output.read(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a valid {output.what} ({key}")


@pytest.mark.parametrize(
    ("output", "name"),
    [
        (EvaluateMetrics, "evaluate.json"),
        (Backtest, "backtest.json"),
        (Slices, "slices.json"),
        (Importance, "importance.json"),
    ],
)
def test_output_the_repositorys_own_file_round_trips_byte_for_byte(
    repo_root: Path, tmp_path: Path, output: type[Output], name: str
) -> None:
    path = repo_root / "outputs" / "metrics" / name
    if not path.is_file():
        pytest.skip(f"{path} not produced yet (`make repro`)")
    output.read(path).write(tmp_path / name)
    assert (tmp_path / name).read_bytes() == path.read_bytes()


def test_drift_summary_the_repositorys_own_file_round_trips_byte_for_byte(
    repo_root: Path, tmp_path: Path
) -> None:
    path = repo_root / "outputs" / "drift" / "drift.json"
    if not path.is_file():
        pytest.skip(f"{path} not produced yet (`make repro`)")
    DriftSummary.read(path).write(tmp_path / "drift.json")
    assert (tmp_path / "drift.json").read_bytes() == path.read_bytes()


def test_slices_keep_an_int_n_int_and_a_float_n_float() -> None:
    measured, small = Slices.parse(SLICES, "slices.json").carrier
    assert (type(measured.n), type(small.n)) == (float, int)
    assert small.roc_auc is None


def test_slices_a_measured_slice_without_its_threshold_metrics_is_refused() -> None:
    row = {k: v for k, v in SLICES["origin"][0].items() if k != "f1"}
    with pytest.raises(DataFileError, match=r"slices\.json: .*origin\.0: .*late_share, accuracy"):
        Slices.parse({**SLICES, "origin": [row]}, "slices.json")


def test_backtest_by_month_must_repeat_months() -> None:
    by_month = {**BACKTEST["by_month"], "2013-08": {**BACKTEST["by_month"]["2013-08"], "n": 1.0}}
    with pytest.raises(DataFileError, match=r"backtest\.json: .*by_month must hold the numbers"):
        Backtest.parse({**BACKTEST, "by_month": by_month}, "backtest.json")


def test_backtest_of_months_builds_by_month() -> None:
    backtest = Backtest.parse(BACKTEST, "backtest.json")
    assert Backtest.of(backtest.months).to_json() == backtest.to_json()


def test_validation_summary_success_must_agree_with_its_failures() -> None:
    with pytest.raises(DataFileError, match=r"summary\.json: .*success must be true exactly"):
        ValidationSummary.parse({**failed_validation(), "success": True}, "summary.json")


def test_model_metadata_of_a_commit_before_the_sidecar_still_reads() -> None:
    old = {**MODEL_METADATA, "git_commit": "feedc0de" * 5, "mlflow_run_id": None}
    assert json.loads(json.dumps(ModelMetadata.parse(old, "model.json").to_json())) == old


def test_model_metadata_columns_keep_the_schemas_order() -> None:
    assert ModelMetadata.parse(MODEL_METADATA, "model.json").columns == [
        "carrier",
        "origin",
        "dep_hour",
    ]


# ---------------------------------------------------------------- release.json


def test_release_round_trip_is_byte_identical(tmp_path: Path) -> None:
    written, typed = tmp_path / "as-release-wrote-it.json", tmp_path / "typed.json"
    write_json(written, RELEASE)
    Release.read(written).write(typed)
    assert typed.read_bytes() == written.read_bytes()


def test_release_writes_every_key_even_unset_ones() -> None:
    unsigned = Release(**{k: v for k, v in RELEASE.items() if k != "signature" and v is not None})
    assert json.dumps(unsigned.to_json()) == json.dumps({**RELEASE, "signature": None})


def test_release_missing_key_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "release.json"
    write_json(path, {k: v for k, v in RELEASE.items() if k != "model_md5"})
    with pytest.raises(DataFileError) as caught:
        Release.read(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message == f"{path}: not a valid release description (model_md5: Field required)"


def test_release_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "release.json"
    write_json(path, {**RELEASE, "enviroment": "prod"})
    with pytest.raises(
        DataFileError, match=r"release\.json: not a valid release description \(enviroment"
    ):
        Release.read(path)


def test_release_is_frozen() -> None:
    release = Release(**RELEASE)
    with pytest.raises(ValueError, match="frozen"):
        release.version = "v9.9.9"  # type: ignore[misc]

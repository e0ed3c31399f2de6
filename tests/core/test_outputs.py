"""core/outputs: the typed JSON outputs are read and written in one place, byte for byte, and a
bad file fails with one line naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flightdelay.core.io import DataFileError, write_json
from flightdelay.core.outputs import EvaluateMetrics

#: evaluate.json as the evaluate stage writes it (the real file's keys).
EVALUATION = {
    "accuracy": 0.9168368091001896,
    "baseline_accuracy": 0.8980968353507365,
    "brier": 0.0656528613866361,
    "eval_month": "2013-09",
    "f1": 0.5033747006313956,
    "late_share": 0.10190316464926352,
    "log_loss": 0.2440131269817336,
    "n": 27428.0,
    "pr_auc": 0.5366306012946407,
    "precision": 0.64293659621802,
    "recall": 0.41359570661896244,
    "roc_auc": 0.8102402444994488,
    "threshold": 0.30454198492458623,
}


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

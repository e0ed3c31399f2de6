"""The service's start-up check of the model directory: the manifest (sha256 of every file) and
model.json's values. Every refusal is one line naming the file and exit status 1."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from flightdelay.core.io import sha256_file
from flightdelay.core.model_io import (
    CONTEXT_DIR,
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    load_model_bundle,
    write_manifest,
)
from flightdelay.serving import serve
from serving_bundle import build_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("model-dir"), repo_root)


@pytest.fixture
def copy(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def refusal(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """serve.main's stderr for a model directory it must refuse (exit status 1, one line)."""
    assert serve.main(["--model-dir", str(model_dir), "--port", "9"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    return err.removeprefix("error: ").rstrip("\n")


def edit_metadata(model_dir: Path, change: Callable[[dict], None], *, sign: bool) -> None:
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))  # json writes NaN as NaN, as a hostile editor might
    if sign:
        write_manifest(model_dir)


def test_saved_model_dir_has_a_manifest_that_sha256sum_verifies(model_dir: Path) -> None:
    lines = (model_dir / MANIFEST_FILE).read_text().splitlines()
    listed = sorted(line.split("  ", 1)[1] for line in lines)
    expected = sorted(
        f.relative_to(model_dir).as_posix()
        for f in model_dir.rglob("*")
        if f.is_file() and f.name != MANIFEST_FILE
    )
    assert listed == expected
    assert {METADATA_FILE, MODEL_FILE, f"{CONTEXT_DIR}/departures.parquet"} <= set(listed)
    if shutil.which("sha256sum"):
        done = subprocess.run(
            ["sha256sum", "--check", "--quiet", MANIFEST_FILE], cwd=model_dir, check=False
        )
        assert done.returncode == 0


def test_model_dir_without_a_manifest_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / MANIFEST_FILE).unlink()
    assert refusal(copy, capsys).startswith(f"{copy / MANIFEST_FILE}: manifest not found")


def test_model_dir_older_than_the_manifest_is_refused_naming_the_fix(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / MANIFEST_FILE).unlink()  # as train wrote model directories before SHA256SUMS
    assert refusal(copy, capsys) == (
        f"{copy / MANIFEST_FILE}: manifest not found (every model directory lists the sha256 of "
        "its files; a model trained before the manifest existed cannot be verified: retrain it "
        "with `flightdelay repro` or `make run`, whose train stage writes SHA256SUMS)"
    )


def test_changed_model_json_is_refused_naming_it(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_metadata(copy, lambda m: m.update(threshold=0.01), sign=False)
    err = refusal(copy, capsys)
    assert err.startswith(f"{copy / METADATA_FILE}: sha256 ")
    assert f"does not match {copy / MANIFEST_FILE}" in err


def test_scaled_context_table_is_refused_naming_it(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = copy / CONTEXT_DIR / "weather.parquet"
    frame = pd.read_parquet(table)
    numeric = frame.select_dtypes("number").columns
    frame[numeric] = frame[numeric] * 1e6
    frame.to_parquet(table, index=False)
    assert refusal(copy, capsys).startswith(f"{table}: sha256 ")


def test_file_listed_but_missing_is_refused(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / CONTEXT_DIR / "planes.parquet").unlink()
    assert refusal(copy, capsys) == (
        f"{copy / CONTEXT_DIR / 'planes.parquet'}: listed in {copy / MANIFEST_FILE} but missing"
    )


def test_file_the_manifest_does_not_list_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = copy / MANIFEST_FILE
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(ln for ln in lines if not ln.rstrip().endswith(METADATA_FILE)))
    assert refusal(copy, capsys).startswith(
        f"{copy / METADATA_FILE}: not listed in {manifest}; refusing"
    )


def test_malformed_or_escaping_manifest_line_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = copy / MANIFEST_FILE
    manifest.write_text(manifest.read_text() + f"{'0' * 64}  ../outside\n")
    assert refusal(copy, capsys).startswith(f"{manifest}:")
    assert "not a '<sha256>  <relative path>' line" in refusal(copy, capsys)


@pytest.mark.parametrize(
    ("threshold", "shown"), [(-1.0, "-1.0"), (1.5, "1.5"), (float("nan"), "nan"), ("0.5", "'0.5'")]
)
def test_threshold_outside_0_1_or_not_finite_is_refused_even_when_re_signed(
    copy: Path, capsys: pytest.CaptureFixture[str], threshold: object, shown: str
) -> None:
    edit_metadata(copy, lambda m: m.update(threshold=threshold), sign=True)
    assert refusal(copy, capsys) == (
        f"{copy / METADATA_FILE}: threshold must be a finite number in [0, 1], got {shown}"
    )


def test_metadata_without_input_schema_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_metadata(copy, lambda m: m.pop("input_schema"), sign=True)
    assert refusal(copy, capsys) == f"{copy / METADATA_FILE}: lacks key(s) ['input_schema']"


def test_swapped_and_re_signed_model_file_is_one_line_not_a_traceback(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / MODEL_FILE).write_bytes(b"not a zip file at all")
    edit_metadata(copy, lambda m: m.update(sha256=sha256_file(copy / MODEL_FILE)), sign=True)
    assert refusal(copy, capsys) == (
        f"{copy / MODEL_FILE}: not a readable skops model: BadZipFile: File is not a zip file"
    )


def test_damaged_and_re_signed_context_table_is_one_line(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = copy / CONTEXT_DIR / "airports.parquet"
    table.write_bytes(b"PAR1 garbage")
    write_manifest(copy)
    assert refusal(copy, capsys).startswith(f"{table}: not a readable parquet table: ")


def test_model_dir_of_an_older_commit_without_manifest_loads_outside_serving(copy: Path) -> None:
    (copy / MANIFEST_FILE).unlink()  # baselines rebuilt by compare/monitor/report at old commits
    assert 0.0 <= load_model_bundle(copy).threshold <= 1.0


def test_metadata_with_an_input_schema_that_is_not_a_list_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_metadata(copy, lambda m: m.update(input_schema="any"), sign=True)
    assert (
        refusal(copy, capsys) == f"{copy / METADATA_FILE}: input_schema must be a list, got 'any'"
    )


def test_untouched_model_dir_loads(model_dir: Path) -> None:
    bundle = load_model_bundle(model_dir)
    assert 0.0 <= bundle.threshold <= 1.0

"""stage: the shared opening of the stage CLIs (``--params``, one ``error:`` line, exit 1)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from flightdelay.core.params import Params
from flightdelay.core.stage import stage_main

STAGES = ("validate", "featurize", "audit", "train", "evaluate", "drift")


class BrokenError(RuntimeError):
    pass


def test_stage_main_runs_with_the_loaded_params(repo_root: Path) -> None:
    seen: list[Params] = []

    def run(params: Params, args: argparse.Namespace) -> int:
        seen.append(params)
        return 7

    assert stage_main("x", None, ["--params", str(repo_root / "params.yaml")], run) == 7
    assert seen[0].bootstrap.samples >= 10


def test_stage_main_known_error_is_one_line_and_exit_1(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(params: Params, args: argparse.Namespace) -> int:
        raise BrokenError("the batch is empty")

    argv = ["--params", str(repo_root / "params.yaml")]
    assert stage_main("x", None, argv, run, (BrokenError,)) == 1
    assert capsys.readouterr().err == "error: the batch is empty\n"


def test_stage_main_unknown_error_is_not_swallowed(repo_root: Path) -> None:
    def run(params: Params, args: argparse.Namespace) -> int:
        raise BrokenError("a bug")

    with pytest.raises(BrokenError):
        stage_main("x", None, ["--params", str(repo_root / "params.yaml")], run)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_cli_missing_params_file_names_it_exit_1(
    stage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module(f"flightdelay.pipeline.{stage}").main

    assert main(["--params", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "nope.yaml" in err
    assert len(err.splitlines()) == 1

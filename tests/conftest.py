"""Shared fixtures. Nothing here touches the network; MLflow always points at tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightdelay.params import Params, load_params

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(REPO_ROOT / "params.yaml")


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the work tree's mlflow.db or reaches a tracking server by accident."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

"""Shared fixtures. Nothing here touches the network; MLflow always points at tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from flightdelay.core.params import Params, load_params
from signing_keys import KeyPair, make_key_pair

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Same as the CLI: OpenMP threads (HistGradientBoosting) must not busy-wait on a shared
    2-core runner (10x slower tests). Runs before any test module loads sklearn/libgomp."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The service's compiled-scorer cache (serving.compiled): one per test session, never the
    # user's ~/.cache; services the tests start inherit it.
    cache = tempfile.mkdtemp(prefix="flightdelay-test-scorer-")
    os.environ["FLIGHTDELAY_SCORER_CACHE"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(REPO_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def data_ready(params: Params) -> Path:
    """The real data/ of the work tree, materialised once (verify, else pull, else rebuild)."""
    data = REPO_ROOT / params.paths.data
    done = subprocess.run(
        [sys.executable, "-m", "flightdelay", "data", "pull", "--no-push"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"could not materialise data/: {done.stderr}"
    return data


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the work tree's mlflow.db or reaches a tracking server by accident."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Two real key pairs: "promotion" (the signer the tests expect) and "other" (anyone else)."""
    directory = tmp_path_factory.mktemp("keys")
    return {name: make_key_pair(directory, name) for name in ("promotion", "other")}


@pytest.fixture(autouse=True)
def _no_signing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own signer or verifier settings never leak into a test."""
    for name in (
        "FLIGHTDELAY_SIGNING_KEY",
        "FLIGHTDELAY_SIGNER",
        "FLIGHTDELAY_MODEL_PUBKEY",
        "FLIGHTDELAY_MODEL_IDENTITY",
        "FLIGHTDELAY_MODEL_OIDC_ISSUER",
        "FLIGHTDELAY_MODEL_SIGNATURE",
        "FLIGHTDELAY_REQUIRE_SIGNATURE",
        "FLIGHTDELAY_SIGSTORE_TRUST_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)

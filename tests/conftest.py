"""Shared fixtures. Nothing here touches the network; MLflow always points at tmp_path."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dvc_store import store_dir
from flightdelay.core.params import Params, load_params
from signing_keys import KeyPair, make_key_pair

REPO_ROOT = Path(__file__).resolve().parents[1]


WITHOUT_DATA = (
    "needs the real data/ (make data), and --without-data says not to materialise it "
    "(make test-fast; make test runs it)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--without-data",
        action="store_true",
        help="skip the tests that need the real data/ instead of materialising it (make test-fast)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker collects; the same order on each
        _longest_first(items)


# optionalhook: with pytest-xdist off (-p no:xdist) the hook is unknown, and pytest refuses a
# conftest that implements an unknown hook.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under pytest-xdist's ``--dist loadscope`` (make test), a module's tests run on one worker,
    so a module-scoped fixture (a pipeline run, a clone, a registry, a server) is built once, not
    once per worker; the workflow harness (tests/workflows, whose session fixtures build a main
    repository and a job venv) is one scope. The scope comes from the node id alone, on the
    controller. (Not ``--dist loadgroup`` with xdist_group marks: pytest-xdist 3.8 marks a group
    by rewriting ``item._nodeid``, which pytest 9 no longer reads, so every group was silently
    ignored and each module's fixtures were built on both workers; tests/repo/test_xdist.py.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ModuleScheduling(config, log)


def scope_of(nodeid: str) -> str:
    """The scheduling scope of a test: its module, or tests/workflows as a whole."""
    path = nodeid.split("::", 1)[0]
    return "tests/workflows" if path.startswith("tests/workflows/") else path


def _group(item: pytest.Item) -> str:
    return Path(scope_of(item.nodeid)).stem


# The longest scopes, longest first (test_fresh_clone excepted: see its line): what a suite
# run's --durations said (a module's fixtures and its tests together; minutes each). pytest-xdist
# hands scopes out in collection order, so these start first and the short ones fill in around
# them instead of the run waiting for a long one at the end. A scope not named keeps its place
# after them.
LONGEST = (
    "test_fresh_clone",  # first: its run of main is then in the store for test_monitor's clone
    "test_loop_e2e",
    "test_pr_e2e",
    "test_monitor",
    "test_canary",
    "test_tracking",
    "test_repro",
    "test_lint",
)


def _longest_first(items: list[pytest.Item]) -> None:
    """Order the items by LONGEST's scopes first (pytest_configure turns off pytest-xdist's own
    reordering, by test count, which sent the few-test end-to-end modules last); a scope's tests
    keep their order."""
    rank = {group: index for index, group in enumerate(LONGEST)}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(_group(item), index)
    items.sort(key=lambda item: (rank.get(_group(item), len(rank)), first[_group(item)]))


def pytest_configure(config: pytest.Config) -> None:
    """Same as the CLI: OpenMP threads (HistGradientBoosting) must not busy-wait on a shared
    2-core runner (10x slower tests). Runs before any test module loads sklearn/libgomp.
    Under --dist loadscope, the scopes go out in the order _longest_first gives them."""
    if getattr(config.option, "dist", "no") == "loadscope":
        config.option.loadscopereorder = False
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
def data_ready(params: Params, pytestconfig: pytest.Config) -> Path:
    """The real data/ of the work tree, materialised once (verify, else pull, else rebuild)."""
    if pytestconfig.getoption("without_data"):
        pytest.skip(WITHOUT_DATA)
    data = REPO_ROOT / params.paths.data
    # One worker at a time (pytest-xdist): two `dvc pull`s into one work tree would collide.
    # .dvc/tmp: git-ignored, the work tree's own (two sessions in one tree would collide too).
    lock_path = REPO_ROOT / ".dvc" / "tmp" / "tests-data-ready.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            [sys.executable, "-m", "flightdelay", "data", "pull", "--no-push"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    assert done.returncode == 0, f"could not materialise data/: {done.stderr}"
    return data


@pytest.fixture(scope="session")
def dvc_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DVC cache the clones running main's pipeline share (tests/dvc_store.py)."""
    return store_dir(tmp_path_factory)


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

"""One DVC cache for the test session, shared by the clones that run main's pipeline.

Several end-to-end fixtures clone this repository and run main's pipeline: test_fresh_clone's
``make run`` and the drift monitor's clone on the committed params, the pull-request job's and
the loop's clones on the fast config (tests/params_edit.FAST). Each rebuilt what another had
already built (the data at least), a full pipeline run per module. :func:`shared_run` makes the
runs of one job (one config) take turns (a file lock, so pytest-xdist workers too): the first
runs the pipeline and adds its DVC cache (objects and run cache) to the session's store, the next
one starts with those objects in its own cache, so its `make data` and `make repro` check out
instead of rebuilding. A run that must build everything itself (test_fresh_clone: a newcomer's
clone, nothing cached) takes its turn without the store's objects and only adds what it made
(``from_store=False``); tests/conftest.py's LONGEST starts it first, so the monitor's clone checks
main's run out instead of rebuilding it.

That is safe because DVC addresses objects by their content's hash and run-cache entries by the
hash of a stage's command, dependencies and params: a clone checks out only the objects its own
dvc.lock names, and `dvc repro` still re-runs every stage whose inputs differ from that dvc.lock,
unless the run cache holds that very run (the same command on the same inputs, whose outputs are
then the bytes it would write: every stage is deterministic). Only main's runs are added: a
branch's runs (other training params) stay in their clone, so a test that has to train a branch
does. The objects are hard links (DVC never rewrites a cache file; workspaces get copies), the
store lives in the session's temporary directory (``FLIGHTDELAY_TEST_DVC_STORE`` names another,
to reuse one across sessions).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's store: beside the workers' base temporary directories under pytest-xdist
    (shared by them), in the session's own otherwise."""
    chosen = os.environ.get("FLIGHTDELAY_TEST_DVC_STORE")
    if chosen:
        return Path(chosen)
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dvc-store"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _link(source: str, target: str) -> None:
    if not os.path.exists(target):
        os.link(source, target)


def merge(source: Path, target: Path) -> None:
    """Add the objects (``files/``; a DVC 2 layout's at the top) and run-cache entries
    (``runs/``) of the DVC cache ``source`` to ``target``."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link, dirs_exist_ok=True)


@contextmanager
def shared_run(store: Path, clone: Path, job: str, *, from_store: bool = True) -> Iterator[None]:
    """Run the block (``job``'s commands in ``clone``) with ``clone``'s DVC cache seeded from the
    store (unless ``from_store`` is false); afterwards add what it made. Blocks of the same
    ``job`` run one at a time."""
    cache = clone / ".dvc" / "cache"
    with _locked(store / f"{job}.lock"):
        if from_store:
            with _locked(store / "store.lock"):
                merge(store / "cache", cache)
        yield
        with _locked(store / "store.lock"):
            merge(cache, store / "cache")

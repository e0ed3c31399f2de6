"""Fixtures of the workflow tests: what every act run shares, built once per session.

- ``main_repo``: a clone of this repository's committed state in which `make data repro` ran on
  main, its outputs pushed to a session DVC remote and its dvc.lock committed: what main looks like
  after a merged pipeline run (the developer's pre-push hook pushes the outputs). Every test starts
  its own origin from it, so no test sees another's commits or tags. The session remote starts as
  hard links of this checkout's DVC cache and of ``OUTPUTS_STORE``, so `make repro` checks out
  every output they hold and rebuilds only the rest; what it rebuilt goes to ``OUTPUTS_STORE``,
  and the next session reproduces nothing. That is safe because DVC objects are addressed by
  their content's hash: a repository uses only the objects its own dvc.lock names, and
  `dvc repro` still re-runs every stage whose code, params or data differ from that dvc.lock.
  Its params.yaml waits longer for a deployed service (``READY_TIMEOUT_S``); no stage reads that.
- ``tools``: the tool cache (setup-python's Python 3.11, setup-cml's cml stand-in).
- ``job_venv``: the one virtual environment every job of the session uses (``VENV``): a copy of
  this venv (act_harness.clone_venv, seconds) without the project. A job's own `make venv` then
  finds every requirement installed and only installs the project, editable from that job's
  checkout, so each job still runs the code it checked out. No scenario changes the
  dependencies.
- ``signing``: the key pair that stands in for Sigstore keyless signing (act_harness.Signing).
- act's cache server directory is shared by the session (the cache key says what is safe to
  restore); pip's wheel cache is the user's, as on a laptop.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from act_harness import (
    REPO_ROOT,
    Act,
    Origin,
    Signing,
    clone_venv,
    sigterm_as_interrupt,
    tool_cache,
    why_not_ready,
)

from signing_keys import make_key_pair

VENV = Path(sys.executable).parent.parent
# Pipeline outputs (DVC objects) that an earlier session reproduced; content-addressed, so any
# clone may share them. Delete it to make the next session reproduce main from scratch.
OUTPUTS_STORE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "flightdelay"
    / "workflow-tests"
    / "dvc-store"
)


# A pipeline run on a loaded machine takes minutes; no setup command may hang for ever.
SETUP_TIMEOUT_S = 1800
# The jobs' services compile the model with gcc before /ready answers: 45 s on 2 cores at a
# load of 8, against params.yaml's 60 s. The origin's main raises deploy.ready_timeout_s to this,
# so a busy machine slows the release jobs down instead of failing them.
READY_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-timeout times the test's own act runs, not the session fixtures: they are built by
    whichever test comes first (the whole suite, or one file alone), and a timeout that counts
    them fails that test for a cost it did not cause."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.timeout(func_only=True))


@pytest.fixture(scope="session", autouse=True)
def _sigterm_tears_down() -> Iterator[None]:
    with sigterm_as_interrupt():
        yield


@pytest.fixture(scope="session")
def act_ready() -> None:
    reason = why_not_ready()
    if reason:
        print(f"workflow tests skipped: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def tools(act_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tool_cache(tmp_path_factory.mktemp("toolcache"))


@pytest.fixture(scope="session")
def job_venv(act_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone_venv(VENV, tmp_path_factory.mktemp("job-venv") / "venv")


@pytest.fixture(scope="session")
def signing(act_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Signing:
    pair = make_key_pair(tmp_path_factory.mktemp("act-keys"), "promotion")
    return Signing(private_key=pair.private, public_key=pair.public)


def _link(source: str, target: str) -> None:
    if not os.path.exists(target):
        os.link(source, target)


def _run(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=SETUP_TIMEOUT_S
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def main_repo(act_ready: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(repository, DVC remote): main after a pipeline run whose outputs are in the remote."""
    root = tmp_path_factory.mktemp("main")
    repo, remote = root / "repo", root / "dvc-remote"
    # The work tree's DVC cache has the data, the store what earlier sessions reproduced
    # (content-addressed, never rewritten): hard links.
    remote.mkdir()
    for objects in (REPO_ROOT / ".dvc" / "cache" / "files", OUTPUTS_STORE / "files"):
        if objects.is_dir():
            shutil.copytree(objects, remote / "files", copy_function=_link, dirs_exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DVC_"))},
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    _run(root, env, "git", "clone", "--quiet", str(REPO_ROOT), str(repo))
    _run(repo, env, "git", "checkout", "--quiet", "-B", "main")
    dvc = [sys.executable, "-m", "dvc"]
    _run(repo, env, *dvc, "remote", "add", "--local", "--default", "--force", "team", str(remote))
    make = ["make", "--no-print-directory", f"VENV={VENV}", "-o", str(VENV / ".installed-dev")]
    params = repo / "params.yaml"
    text = params.read_text()
    params.write_text(
        re.sub(r"(?m)^(  ready_timeout_s: )\d+", rf"\g<1>{READY_TIMEOUT_S}", text, count=1)
    )
    assert params.read_text() != text, "params.yaml has no deploy.ready_timeout_s to raise"
    _run(repo, env, *make, "data")
    _run(repo, env, *make, "repro")
    _run(repo, env, *dvc, "push", "--quiet")
    OUTPUTS_STORE.mkdir(parents=True, exist_ok=True)
    _run(repo, env, *dvc, "remote", "add", "--local", "--force", "store", str(OUTPUTS_STORE))
    _run(repo, env, *dvc, "push", "--quiet", "--remote", "store")
    _run(repo, env, "git", "add", "--all")
    if _run(repo, env, "git", "status", "--porcelain").strip():
        _run(repo, env, "git", "commit", "--quiet", "-m", "pipeline run on main")
    return repo, remote


@pytest.fixture
def origin(main_repo: tuple[Path, Path], tmp_path: Path) -> Origin:
    return Origin(tmp_path, main_repo[0])


@pytest.fixture
def act(
    origin: Origin,
    tools: Path,
    main_repo: tuple[Path, Path],
    job_venv: Path,
    signing: Signing,
    tmp_path: Path,
) -> Iterator[Act]:
    """act for one test; afterwards (pass or fail) no service it deployed is left running."""
    runner = Act(tmp_path, origin, tools, main_repo[1], job_venv, signing)
    yield runner
    runner.close()

"""Fixtures of the workflow tests: what every act run shares, built once per session.

- ``main_repo``: a clone of this repository's committed state in which `make data repro` ran on
  main, its outputs pushed to a session DVC remote and its dvc.lock committed: what main looks like
  after a merged pipeline run (the developer's pre-push hook pushes the outputs). Every test starts
  its own origin from it, so no test sees another's commits or tags.
- ``tools``: the tool cache (setup-python's Python 3.11, setup-cml's cml stand-in).
- ``job_venv``: the one virtual environment every job of the session uses (``VENV``), built
  once by `make venv`. A job's own `make venv` then finds every requirement installed and only
  re-installs the project, editable from that job's checkout (seconds instead of minutes), so
  each job still runs the code it checked out. No scenario changes the dependencies.
- ``signing``: the key pair that stands in for Sigstore keyless signing (act_harness.Signing).
- act's cache server directory is shared by the session (the cache key says what is safe to
  restore); pip's wheel cache is the user's, as on a laptop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from act_harness import REPO_ROOT, Act, Origin, Signing, tool_cache, why_not_ready

from signing_keys import make_key_pair

VENV = Path(sys.executable).parent.parent


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
    venv = tmp_path_factory.mktemp("job-venv") / "venv"
    base = Path(sys.base_prefix) / "bin" / "python3"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    _run(REPO_ROOT, env, "make", "--no-print-directory", "venv", f"VENV={venv}", f"PYTHON={base}")
    return venv


@pytest.fixture(scope="session")
def signing(act_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Signing:
    pair = make_key_pair(tmp_path_factory.mktemp("act-keys"), "promotion")
    return Signing(private_key=pair.private, public_key=pair.public)


def _run(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def main_repo(act_ready: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(repository, DVC remote): main after a pipeline run whose outputs are in the remote."""
    root = tmp_path_factory.mktemp("main")
    repo, remote = root / "repo", root / "dvc-remote"
    # The work tree's DVC cache has the data (content-addressed, never rewritten): hard links.
    cache = REPO_ROOT / ".dvc" / "cache"
    if cache.is_dir():
        shutil.copytree(cache, remote, copy_function=os.link)
    else:
        remote.mkdir()
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
    _run(repo, env, *make, "data")
    _run(repo, env, *make, "repro")
    _run(repo, env, *dvc, "push", "--quiet")
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

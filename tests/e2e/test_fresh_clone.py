"""A newcomer's first ``make run``: a fresh clone, an empty HOME (so an empty default DVC remote
and no caches), a terminal on stdin. The run must print no ERROR or WARNING line, never wait for
input, and rebuild bit for bit what the committed dvc.lock records: afterwards ``git status
--porcelain`` is empty. This is the determinism test against a second machine: the committed
dvc.lock was recorded by another run, in another work tree.

The clone runs its own committed code (PYTHONPATH=<clone>/src) with this venv's tools; ``make``
is told the venv is up to date (``-o <stamp>``), as in tests/e2e/test_pr_e2e.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_store import shared_run

pytestmark = pytest.mark.slow

VENV = Path(sys.executable).parent.parent


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux `script` (a pty) missing")
def test_fresh_clone_make_run_is_quiet_unattended_and_reproduces_dvc_lock(
    repo_root: Path, tmp_path: Path, dvc_store: Path
) -> None:
    home, clone = tmp_path / "home", tmp_path / "clone"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DVC_", "PYTEST"))},
        "HOME": str(home),
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(clone / "src"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # the Makefile's default: sqlite:///mlflow.db
    subprocess.run(["git", "clone", "--quiet", str(repo_root), str(clone)], check=True, env=env)
    make = f"make --no-print-directory VENV={VENV} -o {VENV / '.installed-dev'} run"
    # Nothing comes from the session's store (a newcomer has no cache); what the run builds is
    # added to it, so test_monitor's clone checks main's run out (tests/dvc_store.py).
    with shared_run(dvc_store, clone, "main", from_store=False):
        done = subprocess.run(
            ["script", "-qec", make, "/dev/null"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "[y/n]" not in output
    loud = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert loud == [], "\n".join(loud)

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=clone, env=env, capture_output=True, text=True, check=False
        )

    assert git("diff", "--exit-code", "HEAD", "--", "dvc.lock").returncode == 0, git(
        "diff", "HEAD", "--", "dvc.lock"
    ).stdout
    assert git("status", "--porcelain").stdout == ""
    assert not (home / ".config" / "mlflow").exists()  # telemetry off: no installation id
    # Outside the clone only the default remote (~/.cache/flightdelay) and matplotlib's own
    # font cache and config directory.
    assert {p.name for p in (home / ".cache").iterdir()} <= {"flightdelay", "matplotlib"}

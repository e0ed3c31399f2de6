"""The repository passes its own pre-commit hooks, so CI catches what a skipped hook let in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The workflow linters' hooks run once, in tests/repo/test_workflows.py (the same entries on every
# workflow file, one test per linter, with its findings in the failure); here they would run the
# same commands on the same files a second time.
RUN_BY_TEST_WORKFLOWS = ("zizmor", "check-github-workflows", "actionlint")


def test_lint_skips_only_hooks_test_workflows_runs() -> None:
    runs = Path(__file__).with_name("test_workflows.py").read_text(encoding="utf-8")
    missing = [
        hook
        for hook in RUN_BY_TEST_WORKFLOWS
        if f'run_hook("{hook}", workflow_files())' not in runs
    ]
    assert not missing, (
        f"tests/repo/test_workflows.py no longer runs the hooks {missing} on every workflow"
    )


@pytest.mark.slow
def test_lint_every_pre_commit_hook_passes_on_every_file(repo_root: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SKIP": ",".join(RUN_BY_TEST_WORKFLOWS),
    }
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

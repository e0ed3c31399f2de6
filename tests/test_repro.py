"""``flightdelay repro`` (make repro, the main job's pipeline step) on a tiny real DVC project.

The project's one stage writes a directory output; its clone has an empty remote, the situation
of a newcomer's first ``make run``. ``dvc repro --pull`` printed the objects the remote lacked as
WARNING lines and, with a terminal on stdin, stopped at ``Missing cache for directory ...
continue? [y/n]``; the job must neither warn nor wait, and must rebuild exactly what the lock
records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent

STAGE = """stages:
  build:
    cmd: mkdir -p out && printf a > out/a.txt
    outs:
      - out
"""


def _env(home: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "GITHUB_"))},
        "HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def _run(env: dict[str, str], cwd: Path, *argv: str) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def fresh_clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A clone whose dvc.lock records a directory output that no cache or remote holds."""
    env = _env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    origin = tmp_path / "origin"
    origin.mkdir()
    _run(env, origin, "git", "init", "-q", "-b", "main")
    _run(env, origin, "dvc", "init", "-q")
    _run(env, origin, "dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    (origin / "dvc.yaml").write_text(STAGE)
    _run(env, origin, "dvc", "repro", "-q")
    _run(env, origin, "git", "add", "-A")
    _run(env, origin, "git", "commit", "-qm", "pipeline")
    clone = tmp_path / "clone"
    _run(env, tmp_path, "git", "clone", "-q", str(origin), str(clone))
    (clone / "out").mkdir()  # what a failed pull leaves: the directory, not its files
    return clone, env


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux `script` (a pty) missing")
def test_repro_in_a_terminal_with_an_empty_remote_neither_warns_nor_prompts(fresh_clone) -> None:
    clone, env = fresh_clone
    # script gives the command a terminal, as `make run` typed by a person has.
    done = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m flightdelay repro", "/dev/null"],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "[y/n]" not in output
    assert not [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert "outputs: 0 of 1 missing outputs pulled from local" in output
    assert "pipeline: up to date" in output
    assert (clone / "out" / "a.txt").read_text() == "a"
    assert _run(env, clone, "git", "status", "--porcelain") == ""


def test_repro_outside_a_dvc_project_says_where_to_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flightdelay", "repro"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "no dvc.yaml here: run from the repository root" in done.stderr

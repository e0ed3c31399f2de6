"""``flightdelay repro``: a failed ``dvc repro`` leaves git's files as they were (real git + DVC).

A two-stage pipeline in a temporary repository: ``first`` copies ``n.txt`` to ``a.txt``,
``second`` writes ``b.txt`` and then fails when ``a.txt`` says so. Both outputs are committed
(``cache: false``), like the metrics and the model card, and ``core.autostage`` is on.

The last tests: a clone whose remote lacks the outputs dvc.lock records (a newcomer's first
``make run``) gets them rebuilt, never a WARNING line or a ``[y/n]`` prompt, even in a terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flightdelay.loop import repro

pytestmark = pytest.mark.slow

DVC_YAML = """\
stages:
  first:
    cmd: cp n.txt a.txt
    deps: [n.txt]
    outs:
      - a.txt:
          cache: false
  second:
    cmd: sh second.sh
    deps: [a.txt, second.sh]
    outs:
      - b.txt:
          cache: false
      - big.txt
"""
SECOND = "cp a.txt b.txt\ncp a.txt big.txt\n! grep -q fail a.txt\n"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _ok(cwd: Path, *args: str) -> str:
    done = _run(cwd, *args)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline run once and committed: dvc.lock, a.txt and b.txt as git tracks them."""
    root = tmp_path_factory.mktemp("repro") / "template"
    root.mkdir()
    _ok(root, "git", "init", "--quiet")
    _ok(root, "git", "config", "user.email", "t@example.com")
    _ok(root, "git", "config", "user.name", "t")
    _ok(root, sys.executable, "-m", "dvc", "init", "--quiet")
    _ok(root, sys.executable, "-m", "dvc", "config", "core.autostage", "true")
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "second.sh").write_text(SECOND)
    (root / "n.txt").write_text("one\n")
    _ok(root, sys.executable, "-m", "dvc", "repro", "--quiet")
    _ok(root, "git", "add", "-A")
    _ok(root, "git", "commit", "--quiet", "-m", "pipeline run")
    assert _ok(root, "git", "status", "--porcelain") == ""
    return root


@pytest.fixture
def work(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "work"
    _ok(tmp_path, "git", "clone", "--quiet", str(template), str(root))
    _ok(root, sys.executable, "-m", "dvc", "repro", "--quiet")  # big.txt (cached) for this clone
    assert _ok(root, "git", "status", "--porcelain") == ""
    return root


def test_repro_failure_leaves_only_the_users_change(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "n.txt").write_text("fail\n")  # the user's change: `first` runs, `second` fails
    monkeypatch.chdir(work)

    assert repro.main([]) != 0

    assert _ok(work, "git", "status", "--porcelain") == " M n.txt\n"
    assert (work / "b.txt").read_text() == "one\n", "DVC deleted it, the stage half-wrote it"
    err = capsys.readouterr().err
    assert "dvc repro failed: 3 file(s) git tracks put back as they were before the run" in err
    for rel in ("a.txt", "b.txt", "dvc.lock"):
        assert f"\n  {rel}" in err


def test_plain_dvc_repro_failure_changes_tracked_files(work: Path) -> None:
    # What flightdelay repro exists for: the same failure without it.
    (work / "n.txt").write_text("fail\n")

    assert _run(work, sys.executable, "-m", "dvc", "repro").returncode != 0

    changed = {line[3:] for line in _ok(work, "git", "status", "--porcelain").splitlines()}
    assert changed == {"n.txt", "a.txt", "b.txt", "dvc.lock"}


def test_repro_success_keeps_what_it_wrote(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "n.txt").write_text("two\n")
    monkeypatch.chdir(work)

    assert repro.main([]) == 0

    assert (work / "b.txt").read_text() == "two\n"
    assert "dvc.lock" in _ok(work, "git", "status", "--porcelain")


def test_pipeline_files_are_lock_dvc_files_uncached_outputs_and_gitignores(work: Path) -> None:
    assert repro.pipeline_files(work) == [".gitignore", "a.txt", "b.txt", "dvc.lock", "dvc.yaml"]


def test_restore_removes_a_file_that_did_not_exist(work: Path) -> None:
    snapshot = repro.take(work, ["new.txt", "a.txt"])
    (work / "new.txt").write_text("written by a failed run\n")
    (work / "a.txt").write_text("changed\n")

    assert repro.restore(snapshot) == ["new.txt", "a.txt"]
    assert not (work / "new.txt").exists()
    assert (work / "a.txt").read_text() == "one\n"


# ---------------------------------------------------------------- `make run` on this repository


@pytest.fixture(scope="module")
def clone(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A clone of the committed repository, its own empty DVC remote, data/ rebuilt."""
    work = tmp_path_factory.mktemp("make-run")
    path = work / "clone"
    env = {
        **os.environ,
        "HOME": str(work),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(path / "src"),
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    _ok(work, "git", "clone", "--quiet", str(repo_root), str(path))
    remote = _ok(path, sys.executable, "-m", "dvc", "config", "core.remote").strip()
    _ok(
        path,
        sys.executable,
        "-m",
        "dvc",
        "remote",
        "modify",
        "--local",
        remote,
        "url",
        str(work / "remote"),
    )
    return path, env


def _make_run(clone: tuple[Path, dict[str, str]]) -> subprocess.CompletedProcess[str]:
    path, env = clone
    venv = Path(sys.executable).parent.parent
    # This venv, never reinstalled into (-o: the clone's files are newer than its stamp).
    args = ["make", "-s", "run", f"VENV={venv}", "-o", str(venv / ".installed-dev")]
    return subprocess.run(args, cwd=path, env=env, capture_output=True, text=True, check=False)


def test_make_run_failed_validation_leaves_only_the_users_change(
    clone: tuple[Path, dict[str, str]],
) -> None:
    path, _ = clone
    params = path / "params.yaml"
    params.write_text(params.read_text().replace("[BQN, PSE, SJU, STT]", "[]", 1))

    done = _make_run(clone)

    try:
        assert done.returncode != 0
        assert "validation FAILED" in done.stderr, done.stderr[-3000:]
        assert "dest" in done.stderr
        assert _ok(path, "git", "status", "--porcelain") == " M params.yaml\n"
    finally:
        _ok(path, "git", "checkout", "--", "params.yaml")


def test_make_run_failed_later_stage_leaves_only_the_users_change(
    clone: tuple[Path, dict[str, str]],
) -> None:
    # A pull request that changes a validate parameter (so validate runs whatever the caches
    # hold, and DVC records it in dvc.lock) and has a bug in featurize, which then fails.
    path, _ = clone
    params = path / "params.yaml"
    params.write_text(params.read_text().replace("failure_examples: 5", "failure_examples: 6", 1))
    module = path / "src/flightdelay/pipeline/featurize.py"
    text = module.read_text()
    module.write_text(
        text.replace("    started = time.perf_counter()\n", "    raise SystemExit('a bug')\n", 1)
    )

    done = _make_run(clone)

    try:
        assert done.returncode != 0
        assert "Running stage 'validate'" in done.stdout, done.stdout[-3000:]
        assert "a bug" in done.stderr
        assert "file(s) git tracks put back as they were before the run" in done.stderr
        assert _ok(path, "git", "status", "--porcelain") == (
            " M params.yaml\n M src/flightdelay/pipeline/featurize.py\n"
        )
    finally:
        _ok(path, "git", "checkout", "--", "params.yaml", "src/flightdelay/pipeline/featurize.py")


def _make(clone: tuple[Path, dict[str, str]], target: str) -> subprocess.CompletedProcess[str]:
    path, env = clone
    venv = Path(sys.executable).parent.parent
    args = ["make", "-s", target, f"VENV={venv}", "-o", str(venv / ".installed-dev")]
    return subprocess.run(args, cwd=path, env=env, capture_output=True, text=True, check=False)


def test_make_validate_after_a_corrupting_edit_leaves_data_dvc_alone(
    clone: tuple[Path, dict[str, str]],
) -> None:
    path, _ = clone
    assert _make(clone, "data").returncode == 0
    batch = path / "data/flights/2013-03.csv"
    original = batch.read_bytes()
    batch.write_bytes(original.replace(b",UA,", b",ZZ,", 1))

    try:
        done = _make(clone, "validate")
        assert done.returncode != 0
        assert "column=carrier in 2013-03 (1 rows)" in done.stderr, done.stderr[-3000:]
        assert _ok(path, "git", "status", "--porcelain") == "", "DVC re-recorded data.dvc"

        done = _make_run(clone)  # `make data` refuses to overwrite the edit
        assert done.returncode != 0
        assert "data/flights/2013-03.csv: modified" in done.stderr
        assert batch.read_bytes() != original, "the user's edit was overwritten"
        assert _ok(path, "git", "status", "--porcelain") == ""
    finally:
        batch.write_bytes(original)


# ---------------------------------------------------------------- unattended: no warning, no prompt

VENV_BIN = Path(sys.executable).parent

STAGE = """stages:
  build:
    cmd: mkdir -p out && printf a > out/a.txt
    outs:
      - out
"""


def _fresh_env(home: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "GITHUB_"))},
        "HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def _in(env: dict[str, str], cwd: Path, *argv: str) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def fresh_clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A clone whose dvc.lock records a directory output that no cache or remote holds."""
    env = _fresh_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    origin = tmp_path / "origin"
    origin.mkdir()
    _in(env, origin, "git", "init", "-q", "-b", "main")
    _in(env, origin, "dvc", "init", "-q")
    _in(env, origin, "dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    (origin / "dvc.yaml").write_text(STAGE)
    _in(env, origin, "dvc", "repro", "-q")
    _in(env, origin, "git", "add", "-A")
    _in(env, origin, "git", "commit", "-qm", "pipeline")
    clone = tmp_path / "clone"
    _in(env, tmp_path, "git", "clone", "-q", str(origin), str(clone))
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
    assert _in(env, clone, "git", "status", "--porcelain") == ""


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

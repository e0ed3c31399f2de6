"""rollback: the previous prod version from gto history, re-assigned with a new tag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flightdelay.core import gitops
from flightdelay.loop import rollback
from flightdelay.loop.rollback import RollbackError, previous_version
from registry_repo import RegistryRepo, build_base


def assignment(version: str, n: int, stage: str = "prod", second: int = 0) -> dict[str, str]:
    return {
        "event": "assignment",
        "stage": stage,
        "version": version,
        "ref": f"flight-delay#{stage}#{n}",
        "timestamp": f"2026-01-01T00:00:{second:02d}+00:00",
    }


def test_previous_version_is_the_last_other_prod_version() -> None:
    events = [
        assignment("v0.1.0", 2),
        assignment("v0.2.0", 4),
        assignment("v0.3.0", 6, second=5),
        assignment("v0.4.0", 7, stage="staging", second=9),
    ]
    assert previous_version(events) == ("v0.3.0", "v0.2.0")


def test_previous_version_after_a_rollback_returns_to_where_it_was() -> None:
    events = [assignment("v0.1.0", 2), assignment("v0.2.0", 4), assignment("v0.1.0", 5)]
    assert previous_version(events) == ("v0.1.0", "v0.2.0")


def test_previous_version_orders_same_second_tags_by_counter() -> None:
    events = [assignment("v0.2.0", 10), assignment("v0.1.0", 9)]  # newest first, as gto lists
    assert previous_version(events) == ("v0.2.0", "v0.1.0")


def test_previous_version_of_a_never_assigned_prod_says_so() -> None:
    with pytest.raises(RollbackError, match=r"prod has never been assigned"):
        previous_version([assignment("v0.1.0", 1, stage="staging")])


def test_previous_version_with_a_single_prod_version_says_there_is_none() -> None:
    with pytest.raises(RollbackError, match=r"prod has only ever held v0\.1\.0"):
        previous_version([assignment("v0.1.0", 1), assignment("v0.1.0", 3)])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> RegistryRepo:
    """v0.1.0 then v0.2.0 assigned to prod."""
    repo, commits = build_base(tmp_path_factory.mktemp("rollback"), repo_root, ("a", "b"))
    for version, name in (("v0.1.0", "a"), ("v0.2.0", "b")):
        repo.gto("register", "flight-delay", commits[name], "--version", version)
        repo.gto("assign", "flight-delay", "--version", version, "--stage", "prod")
    return repo


@pytest.fixture
def repo(base: RegistryRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RegistryRepo:
    repo = base.copy(tmp_path / "repo")
    monkeypatch.chdir(repo.root)
    return repo


def test_main_reassigns_prod_to_the_previous_version(repo: RegistryRepo, capsys) -> None:
    assert rollback.main([]) == 0
    assert repo.show()["stage"]["prod"] == "v0.1.0"
    assert "flight-delay#prod#3" in repo.tags()
    assert "prod v0.2.0 -> v0.1.0 (flight-delay#prod#3)" in capsys.readouterr().out
    assert rollback.main([]) == 0  # and back again
    assert repo.show()["stage"]["prod"] == "v0.2.0"
    assert gitops.check_ref("flight-delay#prod#4")["version"] == "v0.2.0"  # type: ignore[index]


def test_main_without_a_previous_version_fails_with_the_reason(repo: RegistryRepo, capsys) -> None:
    assert rollback.main(["--stage", "staging"]) == 1
    assert "staging has never been assigned: nothing to roll back" in capsys.readouterr().err


def make_in(repo: RegistryRepo, repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    return repo.run(
        "make",
        "--no-print-directory",
        "-f",
        str(repo_root / "Makefile"),
        f"VENV={venv}",
        "-o",
        f"{venv}/.installed-dev",
        *args,
        check=False,
    )


def test_make_promote_prod_puts_back_a_version_that_was_in_prod(
    repo: RegistryRepo, repo_root: Path
) -> None:
    done = make_in(repo, repo_root, "promote-prod", "VERSION=v0.1.0")
    assert done.returncode == 0, done.stderr
    assert repo.show()["stage"]["prod"] == "v0.1.0"


def test_make_promote_prod_without_a_semver_says_how(repo: RegistryRepo, repo_root: Path) -> None:
    done = make_in(repo, repo_root, "promote-prod", "VERSION=latest")
    assert done.returncode == 2
    assert "usage: make promote-prod VERSION=vX.Y.Z" in done.stderr

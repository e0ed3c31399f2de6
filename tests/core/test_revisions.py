"""revisions: what was at revision X (refs, the prod version from GTO tags, a commit without a
model) on real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flightdelay.core.revisions import RevisionError, model_path_at, prod_version, resolve


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }.items():
        monkeypatch.setenv(key, value)
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    (tmp_path / "params.yaml").write_text("paths:\n  model: outputs/model\n")
    subprocess.run(["git", "add", "params.yaml"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "first"], cwd=tmp_path, check=True)
    return tmp_path


def test_resolve_unknown_ref_is_none(repo: Path) -> None:
    assert resolve("no-such-branch", repo) is None
    assert resolve("main", repo) == resolve("HEAD", repo)


def test_model_path_at_a_commit_without_pipeline_run_says_so(repo: Path) -> None:
    head = resolve("HEAD", repo)
    assert head is not None

    with pytest.raises(RevisionError, match=r"has no model: its dvc\.lock records no 'outputs/"):
        model_path_at(head, repo)


def test_prod_version_is_none_without_tags(repo: Path) -> None:
    assert prod_version(repo) is None


def test_prod_version_follows_the_newest_prod_assignment(repo: Path) -> None:
    from gto.api import assign, register

    head = resolve("HEAD", repo)
    register(str(repo), "flight-delay", ref="HEAD", version="v0.1.0")
    assign(str(repo), "flight-delay", stage="prod", version="v0.1.0")

    assert prod_version(repo) == (head, "v0.1.0")

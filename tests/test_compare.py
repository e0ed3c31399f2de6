"""compare: per-slice comparisons on synthetic models, the JSON round trip and the git edges (refs,
the prod version from GTO tags, a commit without a model). The bootstrap itself: test_stats.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.compare import (
    CompareError,
    Comparison,
    Delta,
    compare,
    model_path_at,
    prod_version,
    resolve,
)
from synthetic import labelled_scores as synthetic
from synthetic import noisy_scores as noisy


def test_compare_gives_each_large_slice_its_own_interval() -> None:
    y, s = synthetic(3000, seed=14)
    frame = pd.DataFrame(
        {
            "y_true": y,
            "score": s,
            "baseline_score": noisy(s, 0.4, seed=15),
            "carrier": np.where(np.arange(3000) < 2900, "AA", "ZZ"),
        }
    )

    c = compare(
        frame,
        (0.3, 0.3),
        baseline="main",
        commit="abc",
        samples=100,
        confidence=0.95,
        seed=0,
        slice_columns=["carrier"],
        slice_min_rows=500,
    )

    assert [(s.column, s.value, s.n) for s in c.slices] == [("carrier", "AA", 2900)]
    assert c.slices[0].delta.metric == "roc_auc"
    assert set(c.metrics) == {"roc_auc", "pr_auc", "log_loss", "brier", "f1"}


def test_compare_names_a_missing_column() -> None:
    frame = pd.DataFrame({"y_true": [0, 1], "score": [0.1, 0.9]})

    with pytest.raises(CompareError, match=r"lacks column\(s\) \['baseline_score'\]"):
        compare(
            frame, (0.5, 0.5), baseline="main", commit="abc", samples=10, confidence=0.95, seed=0
        )


def test_comparison_round_trips_through_json() -> None:
    c = Comparison(
        "main",
        "abc",
        10,
        100,
        0.95,
        {"roc_auc": Delta("roc_auc", 0.8, 0.7, 0.05, 0.15)},
        notes=["n"],
    )

    assert Comparison.from_json(c.to_json()) == c
    assert c.to_json()["metrics"]["roc_auc"]["verdict"] == "better"


# ---------------------------------------------------------------- git edges


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

    with pytest.raises(CompareError, match=r"has no model: its dvc\.lock records no 'outputs/"):
        model_path_at(head, repo)


def test_prod_version_is_none_without_tags(repo: Path) -> None:
    assert prod_version(repo) is None


def test_prod_version_follows_the_newest_prod_assignment(repo: Path) -> None:
    from gto.api import assign, register

    head = resolve("HEAD", repo)
    register(str(repo), "flight-delay", ref="HEAD", version="v0.1.0")
    assign(str(repo), "flight-delay", stage="prod", version="v0.1.0")

    assert prod_version(repo) == (head, "v0.1.0")

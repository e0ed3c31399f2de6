"""compare: the vectorised paired bootstrap against scikit-learn, its verdicts on synthetic models,
and the git edges (refs, the prod version from GTO tags, a commit without a model)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)

from flightdelay.compare import (
    CompareError,
    Comparison,
    Delta,
    Scored,
    compare,
    model_path_at,
    paired_bootstrap,
    prod_version,
    resample_indices,
    resampled_metrics,
    resolve,
)


def synthetic(n: int, seed: int = 0, late: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Labels and an informative score (AUC about 0.8)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < late).astype(int)
    signal = rng.normal(0, 1, n) + 1.2 * y
    return y, 1 / (1 + np.exp(-signal))


def noisy(scores: np.ndarray, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = np.log(scores / (1 - scores)) + rng.normal(0, sd, len(scores))
    return 1 / (1 + np.exp(-logit))


def test_resampled_metrics_equal_sklearn_on_each_resample_with_ties() -> None:
    y, s = synthetic(300, seed=3)
    s = np.round(s, 2)  # many tied scores
    drawn = next(resample_indices(len(y), 6, seed=11))

    got = resampled_metrics(drawn, Scored.of(y, s, threshold=0.4))

    for i, rows in enumerate(drawn):
        yy, ss = y[rows], s[rows]
        assert got["roc_auc"][i] == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert got["pr_auc"][i] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
        assert got["log_loss"][i] == pytest.approx(log_loss(yy, ss), abs=1e-12)
        assert got["brier"][i] == pytest.approx(brier_score_loss(yy, ss), abs=1e-12)
        assert got["f1"][i] == pytest.approx(f1_score(yy, (ss >= 0.4).astype(int)), abs=1e-12)


def test_paired_bootstrap_identical_models_interval_is_zero_and_noise() -> None:
    y, s = synthetic(2000)

    deltas = paired_bootstrap(y, s, s.copy(), (0.3, 0.3), 200, 0.95, seed=0)

    for d in deltas.values():
        assert d.low <= 0 <= d.high
        assert not d.real
        assert d.verdict == "noise"


def test_paired_bootstrap_equally_good_models_interval_contains_zero() -> None:
    y, s = synthetic(5000, seed=1)
    a, b = noisy(s, 0.3, seed=2), noisy(s, 0.3, seed=3)  # same quality, different errors

    d = paired_bootstrap(y, a, b, (0.3, 0.3), 500, 0.95, seed=0)["roc_auc"]

    assert d.low < 0 < d.high
    assert d.verdict == "noise"


def test_paired_bootstrap_clearly_better_model_is_real() -> None:
    y, s = synthetic(5000, seed=4)
    worse = noisy(s, 1.5, seed=5)

    deltas = paired_bootstrap(y, s, worse, (0.3, 0.3), 300, 0.95, seed=0)

    assert deltas["roc_auc"].low > 0
    assert deltas["roc_auc"].verdict == "better"
    assert deltas["log_loss"].high < 0  # lower is better: a real drop is an improvement
    assert deltas["log_loss"].verdict == "better"


def test_paired_bootstrap_clearly_worse_model_is_real_and_worse() -> None:
    y, s = synthetic(5000, seed=6)

    d = paired_bootstrap(y, noisy(s, 1.5, seed=7), s, (0.3, 0.3), 300, 0.95, seed=0)["roc_auc"]

    assert d.high < 0
    assert d.verdict == "worse"


def test_paired_bootstrap_is_reproducible_for_a_seed() -> None:
    y, s = synthetic(1000, seed=8)
    b = noisy(s, 0.5, seed=9)

    first = paired_bootstrap(y, s, b, (0.3, 0.3), 100, 0.95, seed=5)
    again = paired_bootstrap(y, s, b, (0.3, 0.3), 100, 0.95, seed=5)
    other = paired_bootstrap(y, s, b, (0.3, 0.3), 100, 0.95, seed=6)

    assert first == again
    assert first["roc_auc"].low != other["roc_auc"].low


def test_paired_bootstrap_observed_values_are_full_sample_metrics() -> None:
    y, s = synthetic(800, seed=10)
    b = noisy(s, 0.5, seed=11)

    d = paired_bootstrap(y, s, b, (0.3, 0.3), 50, 0.95, seed=0)

    assert d["roc_auc"].challenger == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert d["roc_auc"].baseline == pytest.approx(roc_auc_score(y, b), abs=1e-12)


def test_paired_bootstrap_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="lengths differ: 3, 3, 2"):
        paired_bootstrap(np.array([0, 1, 0]), np.zeros(3), np.zeros(2), (0.5, 0.5), 10, 0.95, 0)


def test_paired_bootstrap_1000_resamples_of_27k_rows_takes_seconds() -> None:
    y, s = synthetic(27_574, seed=12, late=0.107)
    b = noisy(s, 0.3, seed=13)

    started = time.perf_counter()
    paired_bootstrap(y, s, b, (0.3, 0.3), 1000, 0.95, seed=0)

    # About 1.7 s of CPU; the bound leaves room for a busy CI runner.
    assert time.perf_counter() - started < 10


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

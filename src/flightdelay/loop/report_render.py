"""The report's view: a typed view model built from what ``report.gather`` collected (the words
are the Jinja2 templates', ``templates/report.md.j2``, rendered by report_markdown).

:func:`build_view` only picks and computes numbers (which comparison is judged, which slices
really got worse, whether the data changed, which figures the page shows) into the view model
(:mod:`flightdelay.loop.report_view`); :mod:`flightdelay.loop.report_markdown` renders it. Nothing
here
reads a file.

The page, for a reviewer deciding in the first screen:

- the **verdict line** is the decision (promote or not), the judged metric's delta against prod
  with its interval, and on the next line every caveat to weigh (slices that really got worse,
  performance drift, a changed gate rule, failed validation, stale outputs), each linking to its
  section;
- the **metrics** table (both models scored on the same flights);
- sections scoped to the change: data, validation and drift in full only when the data changed
  against the base; otherwise one collapsed line;
- plots that compare (this change, main and prod overlaid), collapsed on a pull request and open
  on the base branch's own report (nothing changed: the page shows what is in production);
- the card diff as the headline numbers that changed.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Literal

from flightdelay.core.drift_summary import DatasetSummary, LabelDrift
from flightdelay.core.outputs import ValidationSummary
from flightdelay.core.stats import LABELS, METRICS, rate_difference
from flightdelay.loop.compare import Comparison
from flightdelay.loop.report_view import (
    FEATURE_COLUMNS,
    TITLE,
    TOP_FEATURES,
    AuditRow,
    AuditView,
    BaselineColumn,
    CardChange,
    CardView,
    Caveat,
    CheckView,
    DataRow,
    DataView,
    DeltaView,
    DriftView,
    FailureRow,
    FigureRef,
    FooterView,
    GroupRow,
    LabelRate,
    MetricRow,
    MetricsView,
    ParamChange,
    PerformanceCaveat,
    ReportView,
    RuleCaveat,
    SliceCaveat,
    SliceRow,
    SlicesView,
    SliceValue,
    StaleCaveat,
    ValidationView,
    VerdictView,
)

if TYPE_CHECKING:
    from flightdelay.loop.report import Baseline, ReportInputs


# ---------------------------------------------------------------- pure core: numbers


def same_model(a: Baseline, b: Baseline | None) -> bool:
    """Whether two baselines are one model (same commit, or same model sha256)."""
    if b is None:
        return False
    if a.commit is not None and a.commit == b.commit:
        return True
    sha = [x.comparison.baseline_sha256 if x.comparison else None for x in (a, b)]
    return sha[0] is not None and sha[0] == sha[1]


def nothing_changed(r: ReportInputs) -> bool:
    """No parameter, no data and no model change against the base branch."""
    c = r.base.comparison
    return (
        not r.params_diff
        and not r.data_diff
        and c is not None
        and c.baseline_sha256 is not None
        and c.baseline_sha256 == r.model_sha256
    )


def label_rate(label: LabelDrift, dataset: DatasetSummary) -> LabelRate:
    p1, p2 = label.reference_late_rate, label.current_late_rate
    n1, n2 = dataset.n_reference_rows, dataset.n_current_rows
    cis: tuple[Any, Any, Any] = (None, None, None)
    if n1 and n2:
        cis = rate_difference(p1, n1, p2, n2)
    diff = cis[2]
    return LabelRate(
        reference=p1,
        current=p2,
        n_reference=n1 or None,
        n_current=n2 or None,
        reference_ci=cis[0],
        current_ci=cis[1],
        diff_ci=diff,
        changed=bool(diff is not None and (diff[0] > 0 or diff[1] < 0)),
        method=label.method,
        score=label.score,
        threshold=label.threshold,
        drifted=label.drifted,
    )


_CARD_ROW = re.compile(r"^\|\s*(?P<metric>[^|]+?)\s*\|\s*(?P<value>[^|]+?)\s*\|")


def card_metrics(card_md: str) -> dict[str, str]:
    """The ``## Metrics`` table of a model card: metric -> value (as the card prints it)."""
    out: dict[str, str] = {}
    inside = False
    for line in card_md.splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Metrics"
            continue
        match = _CARD_ROW.match(line) if inside else None
        if match and match["metric"] not in {"metric", "month"} and set(match["value"]) - {"-"}:
            out.setdefault(match["metric"], match["value"])
    return out


def card_sections(card_md: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    name = ""
    for line in card_md.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
        sections.setdefault(name, []).append(line)
    return sections


def card_view(old_md: str | None, new_md: str | None) -> CardView | None:
    """Headline numbers of the card that changed, and the names of other changed sections."""
    if not old_md or not new_md or old_md == new_md:
        return None
    a, b = card_metrics(old_md), card_metrics(new_md)
    headline = [
        CardChange(metric=m, old=a.get(m, "–"), new=b[m]) for m in b if a.get(m) != b[m]
    ] + [CardChange(metric=m, old=a[m], new="–") for m in a if m not in b]
    sa, sb = card_sections(old_md), card_sections(new_md)
    others = [
        s
        for s in [*sb, *(s for s in sa if s not in sb)]
        if s and s != "Metrics" and sa.get(s) != sb.get(s)
    ]
    if not headline and not others:
        return None
    return CardView(headline=headline, other_sections=others)


def _judged(r: ReportInputs) -> tuple[Baseline | None, Comparison | None]:
    """The baseline the verdict judges against: prod, else (no prod) none."""
    if r.prod is not None and r.prod.comparison is not None:
        return r.prod, r.prod.comparison
    return None, None


def _metrics(
    r: ReportInputs, columns: list[tuple[BaselineColumn, Comparison | None]]
) -> MetricsView | None:
    if r.metrics is None:
        return None
    rows = []
    for key, higher in METRICS.items():
        value = r.metrics.metric(key)
        if value is None:
            continue
        deltas = [
            DeltaView.of(c.metrics[key]) if c is not None and key in c.metrics else None
            for _, c in columns
        ]
        rows.append(
            MetricRow(
                label=LABELS[key],
                higher_is_better=higher,
                judged=key == r.gate.metric,
                value=value,
                deltas=deltas,
            )
        )
    compared = [c for _, c in columns if c is not None]
    notes = [
        f"{b.name}: {b.missing}"
        for b in (r.base, r.prod)
        if b is not None and b.missing and b.comparison is None
    ]
    notes += [f"{c.baseline}: {n}" for c in compared for n in c.notes]
    return MetricsView(
        month=r.metrics.eval_month,
        flights=int(r.metrics.n),
        columns=[col for col, c in columns if c is not None],
        rows=[
            row.model_copy(
                update={
                    "deltas": [
                        d for d, (_, c) in zip(row.deltas, columns, strict=True) if c is not None
                    ]
                }
            )
            for row in rows
        ],
        samples=compared[0].samples if compared else None,
        confidence=compared[0].confidence if compared else None,
        notes=notes,
    )


def _slice_rows(c: Comparison) -> list[SliceRow]:
    return [
        SliceRow(
            column=s.column,
            value=s.value,
            n=s.n,
            challenger=s.delta.challenger,
            delta=DeltaView.of(s.delta),
        )
        for s in c.slices
    ]


def _slices(r: ReportInputs, against: Comparison | None) -> SlicesView | None:
    g = r.gate
    values = []
    for column in g.slice_columns:
        for e in r.slices.column(column) if r.slices is not None else ():
            n, value = int(float(e.n)), e.metric(g.metric)
            if n < g.slice_min_rows or value is None:
                continue
            values.append(
                SliceValue(
                    column=column,
                    value=e.value,
                    n=n,
                    metric=value,
                    below_floor=value < g.slice_min_metric,
                )
            )
    compared = _slice_rows(against) if against is not None else []
    if not values and not compared:
        return None
    return SlicesView(
        metric_label=LABELS.get(g.metric, g.metric),
        min_rows=g.slice_min_rows,
        floor=g.slice_min_metric,
        against=against.baseline if against is not None else None,
        regressions=[s for s in compared if s.delta.verdict == "worse"],
        compared=compared,
        values=sorted(values, key=lambda v: v.metric),
    )


def _validation(v: ValidationSummary | None) -> ValidationView | None:
    if v is None:
        return None
    return ValidationView(
        success=v.success,
        checks=sum(g.checks for t in v.groups.values() for g in t.values()),
        batches=sum(len(b) for b in v.batches.values()),
        groups=[
            GroupRow(table=t, group=name, checks=g.checks, failed=g.failed)
            for t, by_group in v.groups.items()
            for name, g in by_group.items()
        ],
        failures=[
            FailureRow(
                expectation=f.expectation,
                table=f.table,
                group=f.group,
                column=f.column or "",
                batches=list(f.batches.items()),
                detail=f.detail,
                examples=[str(x) for x in f.examples],
            )
            for f in v.failures
        ],
        skipped=[(t, list(b)) for t, b in v.skipped_from_row_checks.items() if b],
    )


def _audit(a: Any) -> AuditView | None:
    if a is None:
        return None
    from flightdelay.pipeline.audit import summary
    from flightdelay.pipeline.card_view import label_policy

    return AuditView(
        passed=a.passed,
        failures=list(a.failures),
        summary=summary(a),
        label_policy=label_policy(a),
        features=[
            AuditRow(
                feature=f.feature,
                flagged=bool(f.flags),
                missing_rows=f.missing_rows,
                missing_late_share=f.missing_late_share,
                missing_auc=f.missing_auc,
                single_auc=f.single_auc,
            )
            for f in a.features
        ],
    )


def _drift(r: ReportInputs, data_changed: bool) -> DriftView | None:
    d = r.drift
    if d is None:
        return None
    ds, pred, perf = d.dataset, d.prediction, d.performance
    refs = d.reference_months
    performance_drift = perf.available and perf.drifted
    figures = []
    if data_changed:
        figures += [
            FigureRef(name="drift-scores", alt="drift score per feature", open=False),
            FigureRef(name="drift-late_rate", alt="late rate by month", open=False),
            FigureRef(
                name="drift-distributions",
                alt="distributions of the most-drifted features",
                open=False,
            ),
        ]
        if pred.available:
            figures.append(
                FigureRef(name="drift-predictions", alt="predicted probabilities", open=False)
            )
    if perf.available and (data_changed or performance_drift):
        figures.append(
            FigureRef(name="drift-performance", alt="metric by month", open=performance_drift)
        )
    table = r.drift_table or {}
    header = list(table.get("header") or [])
    keep = [i for i, h in enumerate(header) if h in FEATURE_COLUMNS]
    rows = [[str(row[i]) for i in keep] for row in table.get("rows") or []]
    return DriftView(
        data_changed=data_changed,
        current_month=d.current_month,
        reference_span=f"{refs[0]} … {refs[-1]}" if refs else None,
        dataset=ds,
        excluded=[e.column for e in ds.excluded],
        label=label_rate(d.label, ds),
        prediction=pred if pred.available else None,
        performance=perf,
        table_header=[header[i] for i in keep],
        table_rows=rows[:TOP_FEATURES],
        table_more=max(0, len(rows) - TOP_FEATURES),
        table_notes=[str(n) for n in table.get("notes") or []],
        figures=figures,
    )


def build_view(
    r: ReportInputs,
    card_old: str | None = None,
    card_new: str | None = None,
    drawable: Collection[str] | None = None,
) -> ReportView:
    """The report's view model from what ``report.gather`` collected (pure); ``drawable``: the
    figures there is data for (None: all), the page references no other."""
    g = r.gate
    unchanged = nothing_changed(r)
    mode: Literal["change", "unchanged", "skipped"] = (
        "skipped" if r.skipped_models else "unchanged" if unchanged else "change"
    )
    champion, judged = _judged(r)
    main_is_prod = same_model(r.base, r.prod)
    columns: list[tuple[BaselineColumn, Comparison | None]] = []
    if not unchanged:
        columns.append(
            (
                BaselineColumn(name=r.base.name, commit=r.base.commit, also_prod=main_is_prod),
                r.base.comparison,
            )
        )
    if r.prod is not None and (unchanged or not main_is_prod):
        same_as_this = (
            r.prod.comparison is not None and r.prod.comparison.baseline_sha256 == r.model_sha256
        )
        columns.append(
            (
                BaselineColumn(name=r.prod.name, commit=r.prod.commit, is_prod=True),
                None if same_as_this else r.prod.comparison,
            )
        )
    data_changed = bool(r.data_diff)
    drift = _drift(r, data_changed) if mode != "skipped" else None
    slice_base = judged or r.base.comparison if not unchanged else None
    slices = _slices(r, slice_base) if mode != "skipped" else None

    caveats: list[Caveat] = []
    validation = _validation(r.validation)
    # A failed validation is the verdict's own reason (it always blocks), not a caveat.
    if r.skipped_models and (validation is None or validation.success):
        caveats.append(StaleCaveat(reason=r.skipped_models))
    if r.rule is not None and r.rule.changed:
        caveats.append(RuleCaveat(keys=list(r.rule.changes), source=r.rule.source))
    if slices is not None and slices.regressions and slices.against:
        caveats.append(SliceCaveat(against=slices.against, slices=slices.regressions))
    perf = r.drift.performance if r.drift is not None else None
    if r.drift is not None and perf is not None and mode != "skipped" and perf.drifted:
        current, worst, _ = perf.measured()  # an unassessed check is never drifted (DriftSummary)
        caveats.append(
            PerformanceCaveat(
                metric_label=LABELS.get(perf.metric, perf.metric),
                month=r.drift.current_month,
                current=current,
                worst=worst,
                max_drop=perf.max_drop,
            )
        )
    v = r.verdict
    judged_delta = judged.metrics.get(g.metric) if judged is not None else None
    in_production = (
        unchanged
        and r.prod is not None
        and r.prod.comparison is not None
        and r.prod.comparison.baseline_sha256 == r.model_sha256
    )
    verdict = VerdictView(
        promote=v.promote,
        in_production=in_production,
        metric_label=LABELS.get(g.metric, g.metric),
        against=v.champion if champion is not None else None,
        judged=DeltaView.of(judged_delta) if judged_delta is not None else None,
        value=r.metrics.metric(g.metric) if r.metrics is not None else None,
        rule_source=r.rule.source if r.rule is not None else None,
        min_metric=g.min_metric,
        max_drop=g.max_drop,
        confidence=r.bootstrap.confidence,
        reasons=list(v.reasons),
        caveats=caveats,
        checks=[CheckView(name=c.name, passed=c.passed, detail=c.detail) for c in v.checks],
    )
    rule_keys = {k for k, _, _ in r.rule.changes} if r.rule is not None else set()
    evaluation: list[FigureRef] = []
    if mode != "skipped" and r.scores is not None:
        evaluation = [
            FigureRef(
                name="evaluation-curves", alt="ROC, precision-recall and calibration", open=True
            ),
            FigureRef(name="evaluation-confusion", alt="confusion matrix", open=True),
        ]
    if drawable is not None:
        evaluation = [f for f in evaluation if f.name in drawable]
        if drift is not None:
            drift = drift.model_copy(
                update={"figures": [f for f in drift.figures if f.name in drawable]}
            )
    return ReportView(
        title=TITLE,
        mode=mode,
        base_name=r.base.name,
        base_commit=r.base.commit,
        skipped=r.skipped_models,
        verdict=verdict,
        metrics=_metrics(r, columns) if mode != "skipped" else None,
        params=[
            ParamChange(key=k, old=old, new=new, gate=k in rule_keys or k == "gate.*")
            for k, old, new in r.params_diff
        ],
        data=DataView(
            changes=[
                DataRow(
                    path=c.path,
                    change=c.change,
                    rows_old=c.rows[0],
                    rows_new=c.rows[1],
                    md5_old=c.md5[0],
                    md5_new=c.md5[1],
                )
                for c in r.data_diff
            ],
            files=r.data_files,
            data_md5=r.data_md5,
        )
        if r.data_diff
        else None,
        validation=validation,
        audit=_audit(r.audit),
        drift=drift,
        slices=slices,
        figures=evaluation,
        figures_open=unchanged,
        card=card_view(card_old, card_new) if mode == "change" else None,
        footer=FooterView(
            commit=r.commit,
            data_md5=r.data_md5,
            mlflow_run_id=r.mlflow_run_id,
            model_sha256=r.model_sha256,
        ),
    )

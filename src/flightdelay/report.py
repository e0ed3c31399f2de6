"""Stage ``report``: the pull-request report a reviewer decides from, as CML posts it.

Writes ``${paths.report}/report.md`` (exactly what ``cml comment update`` posts), ``report.html``
(a local preview rendered the way GitHub renders the comment, with the plots), ``report.json``
(verdict and comparisons, for tools) and ``img/*.png`` (the plots, referenced relatively).

Sections, most important first; an empty one is left out, and when nothing changed against the
base branch one line says so:

- **verdict**: would this model be promoted if merged, and why (:func:`flightdelay.gate.decide`,
  the same code the promotion workflow runs, against the production model);
- **metrics** vs the base branch (``main``) and vs the production model (the commit GTO says is
  in ``prod``): value, delta and paired bootstrap interval, real or noise
  (:mod:`flightdelay.compare`);
- **parameters** changed (only changed keys) and **data** changed (batches added or changed,
  rows, md5, from ``data.dvc``'s ``meta.files`` at both commits);
- **data validation** (pass/fail per expectation group, failures in detail), **drift** with its
  plots, **slices** with regressions highlighted, **model size and latency** vs the base branch;
- a footer: commit, data hash, MLflow run id, how to reproduce.

The report is also written when the pipeline failed (``make report`` runs after a failed
``dvc repro``): it reads whatever outputs exist. When validation failed it names the broken
expectation and leaves out the model sections, whose outputs would be stale.

Posting (``.github/workflows/pr-comment.yml``, ``make report-comment``): the trusted job treats
the artifact as data. ``scripts/report_comment.py`` publishes the ``img/*.png`` this report shows
as ``![alt](img/NAME.png)`` (that exact form; validated PNGs, its own copies) to CML's asset
service, keeps ``[text](https://...)`` links and attribute-less ``<details>``/``<summary>``/
``<code>``/``<sub>`` tags, escapes every other bracket, and posts with ``cml comment update
--no-publish``. Anything else this report writes as a link or HTML reaches the comment as text.

``flightdelay report --job-summary`` appends report.md to ``$GITHUB_STEP_SUMMARY`` (plots as text:
a job summary cannot show local images).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flightdelay import MODEL_NAME
from flightdelay.compare import LABELS, METRICS, Comparison, Delta
from flightdelay.gate import Rule, Verdict
from flightdelay.params import GateParams

TITLE = "flight-delay report"  # also CML's --watermark-title: one comment, updated in place
IMAGE_DIR = "img"
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)")


# ---------------------------------------------------------------- pure core: inputs


@dataclass(frozen=True)
class Baseline:
    """One baseline of the report: its comparison, or why there is none."""

    name: str  # "main", "prod (flight-delay@v0.1.0)"
    commit: str | None
    comparison: Comparison | None = None
    missing: str | None = None  # why there is no comparison ("no baseline: ...")


@dataclass(frozen=True)
class DataChange:
    path: str
    change: str  # added | removed | changed
    rows: tuple[int | None, int | None]
    md5: tuple[str | None, str | None]


@dataclass(frozen=True)
class ModelStats:
    """Size and prediction latency (median, milliseconds) of one model."""

    size_bytes: int
    latency_1_ms: float | None = None
    latency_1000_ms: float | None = None


@dataclass(frozen=True)
class ReportInputs:
    verdict: Verdict
    gate: GateParams
    base: Baseline
    prod: Baseline | None  # None: no version was ever assigned prod
    validation: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] | None = None  # evaluate.json
    skipped_models: str | None = None  # why the model sections are left out
    params_diff: Sequence[tuple[str, Any, Any]] = ()
    data_diff: Sequence[DataChange] = ()
    data_files: tuple[int, int] | None = None  # files in data.dvc at base, here
    drift: Mapping[str, Any] | None = None
    drift_table: Mapping[str, Any] | None = None
    slices: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    stats: Mapping[str, ModelStats] = field(default_factory=dict)  # "this", "base"
    images: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    card_diff: str | None = None  # flightdelay.card.card_diff of the base's card and this one
    commit: str = "unknown"
    data_md5: str | None = None
    mlflow_run_id: str | None = None
    model_sha256: str | None = None
    rule: Rule | None = None  # the rule it was judged by (the base's); its changes, if any
    audit: Any = None  # flightdelay.audit.AuditReport (audit.json), when the audit stage ran


# ---------------------------------------------------------------- pure core: diffs


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": value}``; lists are values."""
    if not isinstance(tree, Mapping):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out |= flatten(value, name)
        else:
            out[name] = value
    return out


def params_diff(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every changed, added (old None) or removed (new None) key; a whole
    top-level section added or removed is one row (``section.*``, its number of keys)."""
    old, new = old or {}, new or {}
    out: list[tuple[str, Any, Any]] = []
    for section in sorted(old.keys() - new.keys()):
        out.append((f"{section}.*", f"{len(flatten({section: old[section]}))} keys", None))
    for section in sorted(new.keys() - old.keys()):
        out.append((f"{section}.*", None, f"{len(flatten({section: new[section]}))} keys"))
    shared = old.keys() & new.keys()
    a = flatten({k: old[k] for k in shared})
    b = flatten({k: new[k] for k in shared})
    out += [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return sorted(out)


def data_diff(old: Any, new: Any) -> list[DataChange]:
    """Files added, removed or changed between two data.dvc documents (``meta.files``)."""

    def files(doc: Any) -> dict[str, Mapping[str, Any]]:
        return dict(((doc or {}).get("meta") or {}).get("files") or {})

    a, b = files(old), files(new)
    changes = []
    for path in sorted(a.keys() | b.keys()):
        x, y = a.get(path), b.get(path)
        if x == y:
            continue
        change = "added" if x is None else "removed" if y is None else "changed"
        changes.append(
            DataChange(
                path,
                change,
                ((x or {}).get("rows"), (y or {}).get("rows")),
                ((x or {}).get("md5"), (y or {}).get("md5")),
            )
        )
    return changes


# ---------------------------------------------------------------- pure core: rendering


def _num(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _signed(value: float, digits: int = 4) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def _interval(d: Delta) -> str:
    return f"{_signed(d.delta)} ({_signed(d.low)} … {_signed(d.high)})"


def _mark(d: Delta) -> str:
    return {"better": "🟢 real, better", "worse": "🔴 real, worse"}.get(d.verdict, "⚪ noise")


def _short(commit: str | None) -> str:
    return commit[:8] if commit else "?"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    align = align or "-" * len(header)
    marks = {"-": "---", "l": ":--", "r": "--:", "c": ":-:"}
    return [
        "| " + " | ".join(map(cell, header)) + " |",
        "| " + " | ".join(marks[a] for a in align) + " |",
        *("| " + " | ".join(map(cell, r)) + " |" for r in rows),
    ]


def _details(summary: str, body: Sequence[str]) -> list[str]:
    # Blank lines around the body: GitHub renders markdown inside <details> only then.
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>"]


def _images(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [f"![{alt}]({src})" for alt, src in pairs]


def _verdict(r: ReportInputs) -> list[str]:
    v = r.verdict
    head = (
        "✅ **Would be promoted if merged**"
        if v.promote
        else "❌ **Would not be promoted if merged**"
    )
    lines = [f"## {TITLE}", "", f"{head}: {v.reasons[0]}" if v.reasons else head]
    if not v.promote and len(v.reasons) > 1:
        lines += ["", *(f"- {reason}" for reason in v.reasons[1:])]
    lines += _rule_change(r)
    against = f"against {v.champion}" if v.champion else "with no production model yet"
    rows = [("✅" if c.passed else "❌", c.name, c.detail) for c in v.checks]
    lines += [
        "",
        *_details(
            f"Promotion gate ({against}; thresholds: <code>params.yaml</code> <code>gate:</code>"
            f"{' of ' + html.escape(r.rule.source) if r.rule else ''})",
            _table(["", "check", "detail"], rows, "cll"),
        ),
    ]
    return lines


def _rule_change(r: ReportInputs) -> list[str]:
    """A change that alters its own rule: said right under the verdict, with the rule's diff."""
    if r.rule is None or not r.rule.changed:
        return []
    return ["", f"⚠️ **This change {r.rule.note()}.**", "", "```diff", r.rule.diff(), "```"]


def same_model(a: Baseline, b: Baseline | None) -> bool:
    """Whether two baselines are one model (same commit, or same model sha256)."""
    if b is None:
        return False
    if a.commit is not None and a.commit == b.commit:
        return True
    sha = [x.comparison.baseline_sha256 if x.comparison else None for x in (a, b)]
    return sha[0] is not None and sha[0] == sha[1]


def _comparisons(r: ReportInputs) -> list[Baseline]:
    return [r.base] if same_model(r.base, r.prod) or r.prod is None else [r.base, r.prod]


def _metrics(r: ReportInputs) -> list[str]:
    if r.metrics is None:
        return []
    baselines = _comparisons(r)
    same = same_model(r.base, r.prod)
    header = ["metric", "this change"]
    align = "lr"
    for b in baselines:
        name = f"{b.name} = prod" if same and b is r.base else b.name
        if b.comparison is not None:
            header += [name, f"Δ vs {name} (CI)", ""]
            align += "rrl"
    rows = []
    for metric, higher in METRICS.items():
        if metric not in r.metrics:
            continue
        row: list[Any] = [f"{LABELS[metric]} {'↑' if higher else '↓'}", _num(r.metrics[metric])]
        for b in baselines:
            if b.comparison is None:
                continue
            d = b.comparison.metrics.get(metric)
            row += ["–", "–", ""] if d is None else [_num(d.baseline), _interval(d), _mark(d)]
        rows.append(row)
    n = r.metrics.get("n")
    month = r.metrics.get("eval_month", "the evaluation month")
    flights = f" ({int(float(n)):,} flights)" if n is not None else ""
    lines = [f"### Metrics on {month}{flights}", "", *_table(header, rows, align)]
    with_ci = [b.comparison for b in baselines if b.comparison is not None]
    if with_ci:
        c = with_ci[0]
        lines += [
            "",
            f"Δ = this change − baseline, both scored on the same flights; interval: "
            f"paired bootstrap, {c.samples:,} resamples, {100 * c.confidence:g} %. "
            "**Real** when the interval excludes 0, else noise.",
        ]
    notes = [f"- vs {b.name} ({_short(b.commit)}): {b.missing}" for b in baselines if b.missing]
    notes += [
        f"- vs {b.name}: {note}" for b in baselines if b.comparison for note in b.comparison.notes
    ]
    if r.prod is None:
        notes.append(
            f"- no production model yet: no version of {MODEL_NAME} was ever assigned prod"
        )
    return lines + (["", *notes] if notes else [])


def _params(r: ReportInputs) -> list[str]:
    if not r.params_diff:
        return []
    rows = [
        (
            f"`{k}`",
            "_(absent)_" if old is None else f"`{old}`",
            "_(removed)_" if new is None else f"`{new}`",
        )
        for k, old, new in r.params_diff
    ]
    return [
        f"### Parameters changed (vs {r.base.name})",
        "",
        *_table(["key", r.base.name, "this change"], rows),
    ]


def _data(r: ReportInputs) -> list[str]:
    if not r.data_diff:
        return []

    def rows_text(c: DataChange) -> str:
        old, new = c.rows
        if c.change == "changed" and old != new:
            return f"{old or 0:,} → {new or 0:,}"
        value = new if new is not None else old
        return "" if value is None else f"{value:,}"

    def md5_text(c: DataChange) -> str:
        old, new = (f"`{m[:8]}`" if m else "" for m in c.md5)
        return f"{old} → {new}" if c.change == "changed" else new or old

    rows = [(f"`{c.path}`", c.change, rows_text(c), md5_text(c)) for c in r.data_diff]
    lines = [
        f"### Data changed (vs {r.base.name})",
        "",
        *_table(["file", "change", "rows", "md5"], rows, "llrl"),
    ]
    if r.data_files:
        lines += [
            "",
            f"`data.dvc`: {r.data_files[0]} → {r.data_files[1]} files; data hash "
            f"`{(r.data_md5 or '?')[:12]}`",
        ]
    return lines


def _validation(r: ReportInputs) -> list[str]:
    v = r.validation
    if v is None:
        return []
    groups = v.get("groups") or {}
    checks = sum(g.get("checks", 0) for t in groups.values() for g in t.values())
    batches = sum(len(b) for b in (v.get("batches") or {}).values())
    rows = [
        (
            "✅" if g.get("failed", 0) == 0 else "❌",
            table,
            group,
            g.get("checks", 0),
            g.get("failed", 0),
        )
        for table, by_group in groups.items()
        for group, g in by_group.items()
    ]
    per_group = _table(["", "table", "group", "checks", "failed"], rows, "cllrr")
    if v.get("success") is True:
        return [
            f"### Data validation ✅ passed ({checks} checks on {batches} batches)",
            "",
            *_details("Checks per expectation group", per_group),
        ]
    failures = v.get("failures") or []
    detail = [
        (
            f"`{f.get('expectation')}`",
            f.get("table", ""),
            f.get("group", ""),
            f.get("column") or "",
            ", ".join(
                f"{b} ({n:,} rows)" if n else str(b) for b, n in (f.get("batches") or {}).items()
            ),
            f.get("detail", ""),
            ", ".join(map(str, f.get("examples") or [])),
        )
        for f in failures
    ]
    lines = [
        f"### Data validation ❌ FAILED: {len(failures)} of {checks} checks on {batches} batches",
        "",
        *_table(
            ["expectation", "table", "group", "column", "batch (rows)", "detail", "examples"],
            detail,
        ),
    ]
    skipped = {t: b for t, b in (v.get("skipped_from_row_checks") or {}).items() if b}
    if skipped:
        lines += [
            "",
            "Left out of the row checks until the above is fixed: "
            + "; ".join(f"{t} {', '.join(b)}" for t, b in skipped.items()),
        ]
    return [*lines, "", *_details("Checks per expectation group", per_group)]


def excluded_columns(excluded: Any) -> list[str]:
    """Column names of drift.json's ``excluded`` (a mapping, or a list of {column, reason})."""
    if isinstance(excluded, Mapping):
        return [str(c) for c in excluded]
    return [str(e.get("column", e)) if isinstance(e, Mapping) else str(e) for e in excluded]


def _drift(r: ReportInputs) -> list[str]:
    d = r.drift
    if d is None:
        return []
    ds, label, pred, perf = (
        d.get(k) or {} for k in ("dataset", "label", "prediction", "performance")
    )
    refs = d.get("reference_months") or []
    span = f"{refs[0]} … {refs[-1]}" if refs else "the training months"

    def yes(flag: Any) -> str:
        return "**yes**" if flag else "no"

    lines = [f"### Drift: {d.get('current_month')} vs {span}", ""]
    if ds:
        drifted = ds.get("drifted_features") or []
        lines.append(
            f"- Dataset drift: {yes(ds.get('drifted'))}: {ds.get('n_drifted')} of "
            f"{ds.get('n_features')} features drifted ({100 * ds.get('share_drifted', 0):.0f} %, "
            f"threshold {100 * ds.get('drift_share_threshold', 0):.0f} %)"
            + (
                f": {', '.join(f'`{c}`' for c in drifted[:8])}{' …' if len(drifted) > 8 else ''}"
                if drifted
                else ""
            )
        )
        if ds.get("excluded"):
            lines.append(
                f"- Excluded (calendar columns differ by construction): "
                f"{', '.join(f'`{c}`' for c in excluded_columns(ds['excluded']))}"
            )
    if label:
        lines.append(
            f"- Label drift: {yes(label.get('drifted'))}: late rate "
            f"{100 * label.get('reference_late_rate', 0):.1f} % → "
            f"{100 * label.get('current_late_rate', 0):.1f} %"
        )
    if pred.get("available"):
        lines.append(
            f"- Prediction drift: {yes(pred.get('drifted'))}: mean score "
            f"{pred.get('reference_mean_score', 0):.3f} → "
            f"{pred.get('current_mean_score', 0):.3f} ({pred.get('method')} "
            f"{pred.get('score', 0):.3g}, threshold {pred.get('threshold')})"
        )
    if perf.get("available"):
        lines.append(
            f"- Performance drift: {yes(perf.get('drifted'))}: {perf.get('metric')} "
            f"{perf.get('current', 0):.4f} vs worst backtest month "
            f"{perf.get('backtest_worst', 0):.4f} (allowed drop "
            f"{perf.get('max_drop')})"
        )
    elif perf.get("message"):
        lines.append(f"- Performance drift: {perf['message']}")
    images = r.images.get("drift", ())
    lines += ["", *_images(images[:1])] if images else []
    table = r.drift_table
    body: list[str] = []
    if table and table.get("rows"):
        body += _table(table["header"], table["rows"])
        notes = [f"- {note}" for note in table.get("notes", [])]
        body += ["", *notes] if notes else []
    body += ["", *_images(images[1:])] if images[1:] else []
    if body:
        lines += ["", *_details("Per-feature drift and distributions", body)]
    return lines


def _slices(r: ReportInputs) -> list[str]:
    g = r.gate
    name = LABELS.get(g.metric, g.metric)
    comparison = r.base.comparison
    if comparison is not None and comparison.slices:

        def row(s: Any) -> list[Any]:
            d = s.delta
            regressed = d.verdict == "worse"
            cell = _interval(d)
            return [
                f"**{s.column}={s.value}**" if regressed else f"{s.column}={s.value}",
                f"{s.n:,}",
                _num(d.challenger),
                _num(d.baseline),
                f"**{cell}**" if regressed else cell,
                _mark(d),
            ]

        header = ["slice", "flights", "this change", r.base.name, "Δ (CI)", ""]
        regressions = [s for s in comparison.slices if s.delta.verdict == "worse"]
        lines = [
            f"### Slices ({name}, slices with ≥ {g.slice_min_rows:,} flights, vs {r.base.name})",
            "",
        ]
        if regressions:
            lines += [
                f"⚠️ {len(regressions)} slice(s) got really worse:",
                "",
                *_table(header, [row(s) for s in regressions], "lrrrrl"),
                "",
            ]
        else:
            lines += ["No slice got really worse.", ""]
        return lines + _details(
            f"All {len(comparison.slices)} slices",
            _table(header, [row(s) for s in comparison.slices], "lrrrrl"),
        )
    if not r.slices:
        return []
    rows = []
    for column in g.slice_columns:
        for e in r.slices.get(column, []):
            n, value = int(float(e.get("n", 0))), e.get(g.metric)
            if n < g.slice_min_rows or value is None:
                continue
            low = float(value) < g.slice_min_metric
            rows.append(
                (
                    f"{column}={e.get(column)}",
                    f"{n:,}",
                    f"**{float(value):.4f}**" if low else f"{float(value):.4f}",
                    "🔴 below floor" if low else "",
                )
            )
    if not rows:
        return []
    return [
        f"### Slices ({name}, slices with ≥ {g.slice_min_rows:,} flights)",
        "",
        *_details(
            f"{len(rows)} slices (floor {g.slice_min_metric:g})",
            _table(["slice", "flights", name, ""], rows, "lrrl"),
        ),
    ]


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _stats(r: ReportInputs) -> list[str]:
    this, base = r.stats.get("this"), r.stats.get("base")
    if this is None:
        return []

    def vs(a: float | None, b: float | None, text: Any) -> str:
        if a is None:
            return "–"
        if b is None or b == 0:
            return text(a)
        change = 100 * (a - b) / b
        return f"{text(a)} (same)" if abs(change) < 0.5 else f"{text(a)} ({_signed(change, 0)} %)"

    def ms(x: float) -> str:
        return f"{x:.1f} ms"

    rows = [
        (
            "model file (`model.skops`)",
            vs(this.size_bytes, base.size_bytes if base else None, _size),
            _size(base.size_bytes) if base else "–",
        ),
        (
            "predict 1 row",
            vs(this.latency_1_ms, base.latency_1_ms if base else None, ms),
            ms(base.latency_1_ms) if base and base.latency_1_ms is not None else "–",
        ),
        (
            "predict 1,000 rows",
            vs(this.latency_1000_ms, base.latency_1000_ms if base else None, ms),
            ms(base.latency_1000_ms) if base and base.latency_1000_ms is not None else "–",
        ),
    ]
    return [
        "### Model size and latency",
        "",
        *_table(["", "this change", r.base.name], rows, "lrr"),
        "",
        "Latency: median of repeated `predict_proba` calls on evaluation rows (features "
        "built), both models in the same process on this runner.",
    ]


def _card(r: ReportInputs) -> list[str]:
    if not r.card_diff or r.card_diff.startswith(("The model card is unchanged", "New model card")):
        return []
    return _details(f"Model card changes (vs {r.base.name})", r.card_diff.strip().splitlines())


def _plots(r: ReportInputs) -> list[str]:
    images = r.images.get("evaluation", ())
    return (
        _details(
            "Evaluation plots (ROC, precision-recall, calibration, confusion)", _images(images)
        )
        if images
        else []
    )


def _footer(r: ReportInputs) -> list[str]:
    run = f"MLflow run `{r.mlflow_run_id}`" if r.mlflow_run_id else "no MLflow run"
    parts = [
        f"commit `{_short(r.commit)}`",
        f"data `{(r.data_md5 or '?')[:12]}`",
        run,
        f"reproduce: `git checkout {_short(r.commit)} && make run`",
    ]
    return ["---", f"<sub>{' · '.join(parts)} · `flightdelay report`</sub>"]


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


def render(r: ReportInputs) -> str:
    """report.md: every non-empty section, most important first."""
    sections = [_verdict(r)]
    if nothing_changed(r):
        sections.append(
            [
                f"Nothing changed against {r.base.name} ({_short(r.base.commit)}): "
                f"same parameters, same data, same model (sha256 "
                f"`{(r.model_sha256 or '')[:12]}`)."
            ]
        )
    else:
        if r.skipped_models:
            sections.append([f"⚠️ {r.skipped_models}"])
        sections += [
            _metrics(r),
            _params(r),
            _data(r),
            _validation(r),
            _audit(r),
            _drift(r),
            _slices(r),
            _stats(r),
            _plots(r),
            _card(r),
        ]
    sections.append(_footer(r))
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


def for_job_summary(markdown: str) -> str:
    """The report for ``$GITHUB_STEP_SUMMARY``: local images become text (it cannot show them)."""
    return IMAGE.sub(
        lambda m: f"_(plot `{Path(m['src']).name}`: in the `model-report` artifact)_", markdown
    )


CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI","Noto Sans",Helvetica,Arial,
sans-serif;font-size:14px;line-height:1.5;color:#1f2328;max-width:900px;margin:24px auto;
padding:16px 24px;border:1px solid #d1d9e0;border-radius:6px}
h2{border-bottom:1px solid #d1d9e0;padding-bottom:.3em}h3{margin-top:24px}
table{border-collapse:collapse;margin:8px 0;display:block;overflow:auto}
th,td{border:1px solid #d1d9e0;padding:6px 13px}tr:nth-child(2n){background:#f6f8fa}
th{font-weight:600}code{background:#eff1f3;padding:.2em .4em;border-radius:6px;font-size:85%}
img{max-width:100%;margin:4px 0}details{margin:8px 0}summary{cursor:pointer}
hr{border:0;border-top:1px solid #d1d9e0}sub{color:#59636e}
"""


def to_html(markdown_text: str) -> str:
    """A standalone HTML page of the report, rendered the way GitHub renders the comment."""
    import markdown

    # GitHub renders markdown inside <details> when blank lines surround it; Python-Markdown
    # needs md_in_html and markdown="1" for the same.
    text = markdown_text.replace("<details>", '<details markdown="1">')
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "md_in_html"])
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(TITLE)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


# ---------------------------------------------------------------- I/O edge


def _audit(r: ReportInputs) -> list[str]:
    """The leakage audit (stage audit): verdict, failures, label policy, every feature."""
    a = r.audit
    if a is None:
        return []
    from flightdelay.audit import summary
    from flightdelay.card import label_policy

    rows = [
        (
            "✅" if not f.flags else "❌",
            f.feature,
            f"{f.missing_rows:,}",
            "-" if f.missing_late_share is None else f"{f.missing_late_share:.1%}",
            "-" if f.missing_auc is None else f"{f.missing_auc:.3f}",
            "-" if f.single_auc is None else f"{f.single_auc:.3f}",
        )
        for f in a.features
    ]
    table = _table(
        ["", "feature", "missing", "late among missing", "missingness AUC", "one-feature AUC"],
        rows,
        "clrrrr",
    )
    head = "✅ passed" if a.passed else f"❌ FAILED: {len(a.failures)} problem(s)"
    return [
        f"### Leakage audit {head}",
        "",
        *[f"- {failure}" for failure in a.failures],
        *([""] if a.failures else []),
        f"{summary(a)}. {label_policy(a)}",
        "",
        *_details(f"All {len(rows)} features", table),
    ]


def _read_optional(path: Path, what: str) -> Any:
    from flightdelay.io import read_json

    return read_json(path, what) if path.is_file() else None


def staleness(
    model_meta: Mapping[str, Any] | None, params: Any, data_md5: str | None
) -> str | None:
    """Why the model outputs do not belong to this data and these params, or None."""
    if model_meta is None:
        return "no trained model (the pipeline stopped before `train`): model sections left out."
    if data_md5 and model_meta.get("data_md5") not in (None, data_md5):
        return (
            "the model outputs were trained on other data than data.dvc records (the "
            "pipeline stopped early): model sections left out."
        )
    for section in ("featurize", "train"):
        if section in model_meta and model_meta[section] != getattr(params, section).model_dump():
            return (
                f"the model outputs were trained with other `{section}` params than "
                "params.yaml (the pipeline stopped early): model sections left out."
            )
    return None


def latency(
    models: Mapping[str, tuple[Any, Any]], repeats: int = 31
) -> dict[str, tuple[float, float]]:
    """Median milliseconds of ``predict_proba`` on 1 row and on 1,000 rows, per model
    (``name -> (pipeline, rows)``). Calls alternate between the models so that a busy machine
    slows them alike (timing one model after the other would favour whichever ran when the
    machine was quieter)."""
    import statistics

    frames = {name: (p, rows.iloc[:1], rows.iloc[:1000]) for name, (p, rows) in models.items()}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in frames}
    for pipeline, one, _ in frames.values():
        pipeline.predict_proba(one)  # warm-up
    for i in range(repeats):
        for name, (pipeline, one, many) in frames.items():
            for frame, bucket in ((one, times[name][0]), (many, times[name][1])):
                if bucket is times[name][1] and i % 3:
                    continue  # 1,000 rows: every third round is enough for a stable median
                started = time.perf_counter()
                pipeline.predict_proba(frame)
                bucket.append(1000 * (time.perf_counter() - started))
    return {name: (statistics.median(a), statistics.median(b)) for name, (a, b) in times.items()}


def copy_images(params: Any, out: Path) -> dict[str, list[tuple[str, str]]]:
    """Copy the PNG plots into ``out/img`` and return them per section, relative to ``out``."""
    wanted = {
        "drift": [
            (params.paths.drift / "png" / f"{n}.png", n)
            for n in ("drift_scores", "performance", "late_rate", "scores", "distributions")
        ],
        "evaluation": [
            (params.paths.plots / f"{n}.png", n) for n in ("roc", "pr", "calibration", "confusion")
        ],
    }
    target = out / IMAGE_DIR
    shutil.rmtree(target, ignore_errors=True)
    found: dict[str, list[tuple[str, str]]] = {}
    for section, files in wanted.items():
        for source, name in files:
            if source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                copied = f"{section}-{name}.png"
                shutil.copy2(source, target / copied)
                found.setdefault(section, []).append(
                    (name.replace("_", " "), f"{IMAGE_DIR}/{copied}")
                )
    return found


def _git_yaml(commit: str | None, path: str) -> Any:
    import yaml

    from flightdelay.compare import show

    if commit is None:
        return None
    text = show(commit, path)
    return None if text is None else yaml.safe_load(text)


def card_changes(params: Any, base_commit: str | None) -> str | None:
    """The model card's diff against the base branch's (flightdelay.card), or None."""
    from flightdelay.compare import show

    card = params.paths.cards / f"{MODEL_NAME}.md"
    if base_commit is None or not card.is_file():
        return None
    from flightdelay.card import card_diff

    return card_diff(show(base_commit, card.as_posix()) or "", card.read_text(encoding="utf-8"))


def base_ref(explicit: str | None) -> str:
    """The base branch: --base, else the pull request's base in GitHub Actions, else main."""
    return explicit or os.environ.get("GITHUB_BASE_REF") or "main"


def gather(
    params: Any, params_file: Path, base: str, champion: str | None, measure: bool = True
) -> ReportInputs:
    """Read every output that exists and build the report's inputs (never raises for a missing
    output: the section is left out or says why)."""
    import yaml

    from flightdelay import compare as cmp
    from flightdelay.gate import decide, judged_by, read_challenger, rule_at
    from flightdelay.io import DataFileError
    from flightdelay.model_io import load_model_bundle

    paths = params.paths
    gate_challenger = read_challenger(paths)
    here_dvc = yaml.safe_load(Path("data.dvc").read_text()) if Path("data.dvc").is_file() else {}
    data_md5 = ((here_dvc.get("outs") or [{}])[0]).get("md5")
    meta = _read_optional(paths.model / "model.json", "model metadata")
    skipped = staleness(meta, params, data_md5)
    if (
        gate_challenger.validation is not None
        and gate_challenger.validation.get("success") is not True
    ):
        skipped = (
            "data validation failed, so no model was built from this data: model sections left out."
        )
    try:
        head = cmp.git("rev-parse", "HEAD").strip()
    except cmp.CompareError:
        head = "unknown"
    base_commit = cmp.resolve(base)
    # The rule comes from the protected side: the base's params.yaml decides, never this change's.
    rule = rule_at(base_commit, base, params, params_file)
    judged = rule.apply(params)
    scores = None
    if skipped is None:
        try:
            scores = cmp.read_challenger(params)
        except cmp.CompareError as exc:
            skipped = f"{exc}: model sections left out."

    def baseline(commit: str | None, name: str, missing: str) -> Baseline:
        if commit is None:
            return Baseline(name, None, missing=missing)
        if scores is None:
            return Baseline(name, commit)
        try:
            return Baseline(name, commit, cmp.compare_with(commit, name, judged, scores))
        except cmp.CompareError as exc:
            return Baseline(name, commit, missing=f"no baseline: {exc}")

    base_side = baseline(
        base_commit,
        base,
        f"no baseline: `{base}` does not exist here "
        "(fresh repository, or a checkout without history: fetch-depth 0)",
    )
    prod_side: Baseline | None = None
    try:
        found = cmp.champion_ref(champion)
    except cmp.CompareError as exc:
        found = None
        prod_side = Baseline(champion or "prod", None, missing=str(exc))
    if found is not None:
        if found[0] == base_commit and base_side.comparison is not None:
            prod_side = Baseline(
                found[1], found[0], replace(base_side.comparison, baseline=found[1])
            )
        else:
            prod_side = baseline(found[0], found[1], "")
    champion_cmp = prod_side.comparison if prod_side else None
    gate_view = (
        gate_challenger
        if skipped is None
        else type(gate_challenger)(None, None, gate_challenger.validation)
    )
    verdict = decide(gate_view, champion_cmp, rule.gate)
    if found is not None and champion_cmp is None and skipped is None:
        verdict = Verdict(
            False,
            [
                f"the production model could not be compared: "
                f"{prod_side.missing if prod_side else ''}",
                *verdict.reasons,
            ],
            verdict.checks,
            verdict.champion,
        )
    verdict = judged_by(verdict, rule)

    stats: dict[str, ModelStats] = {}
    if skipped is None and scores is not None:
        try:
            bundle = load_model_bundle(paths.model)
            timed = {
                "this": (
                    bundle.pipeline,
                    scores.predictions.loc[:, cmp.schema_columns(bundle.metadata)],
                )
            }
            sizes = {"this": (paths.model / "model.skops").stat().st_size}
            if base_side.comparison is not None and base_commit:
                other_dir = cmp.materialise(base_commit, allow_reproduce=False).model_dir
                other = load_model_bundle(other_dir)
                other_rows, _ = cmp.baseline_features(
                    scores.predictions,
                    other.metadata,
                    scores.featurize,
                    paths.flights,
                    paths.context,
                    scores.month,
                )
                timed["base"] = (other.pipeline, other_rows)
                sizes["base"] = (other_dir / "model.skops").stat().st_size
            timing = latency(timed) if measure else {}
            stats = {
                name: ModelStats(size, *timing.get(name, (None, None)))
                for name, size in sizes.items()
            }
        except (DataFileError, cmp.CompareError, KeyError):
            stats = {}
    base_dvc = _git_yaml(base_commit, "data.dvc")
    here_params = yaml.safe_load(params_file.read_text())
    return ReportInputs(
        verdict=verdict,
        gate=rule.gate,
        base=base_side,
        prod=prod_side,
        validation=gate_challenger.validation,
        metrics=gate_challenger.metrics if skipped is None else None,
        skipped_models=skipped,
        params_diff=params_diff(_git_yaml(base_commit, "params.yaml"), here_params)
        if base_commit
        else [],
        data_diff=data_diff(base_dvc, here_dvc) if base_commit else [],
        data_files=(
            len(((base_dvc or {}).get("meta") or {}).get("files") or {}),
            len((here_dvc.get("meta") or {}).get("files") or {}),
        )
        if base_dvc
        else None,
        drift=_read_optional(paths.drift / "drift.json", "drift summary")
        if skipped is None
        else None,
        drift_table=_read_optional(paths.drift / "features.json", "drift table")
        if skipped is None
        else None,
        slices=gate_challenger.slices if skipped is None else None,
        stats=stats,
        card_diff=card_changes(params, base_commit) if skipped is None else None,
        commit=head,
        data_md5=data_md5,
        mlflow_run_id=(meta or {}).get("mlflow_run_id") if skipped is None else None,
        model_sha256=(meta or {}).get("sha256") if skipped is None else None,
        rule=rule,
        audit=_read_audit(paths.audit, gate_challenger.validation),
    )


def _read_audit(path: Path, validation: Mapping[str, Any] | None) -> Any:
    """The audit of the data that passed validation (a failed audit shows why the run stopped)."""
    from flightdelay.audit import read_audit
    from flightdelay.io import DataFileError

    if not path.is_file() or (validation or {}).get("success") is not True:
        return None
    try:
        return read_audit(path)
    except DataFileError:
        return None


def write_report(inputs: ReportInputs, out: Path, images: Mapping[str, Any]) -> Path:
    from flightdelay.io import write_json

    inputs = replace(inputs, images=images)
    markdown_text = render(inputs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown_text, encoding="utf-8")
    (out / "report.html").write_text(to_html(markdown_text), encoding="utf-8")
    write_json(
        out / "report.json",
        {
            "verdict": inputs.verdict.to_json(),
            "base": {
                "name": inputs.base.name,
                "commit": inputs.base.commit,
                "missing": inputs.base.missing,
                "comparison": inputs.base.comparison.to_json() if inputs.base.comparison else None,
            },
            "prod": None
            if inputs.prod is None
            else {
                "name": inputs.prod.name,
                "commit": inputs.prod.commit,
                "missing": inputs.prod.missing,
                "comparison": inputs.prod.comparison.to_json() if inputs.prod.comparison else None,
            },
            "rule": None
            if inputs.rule is None
            else {
                "source": inputs.rule.source,
                "changes": [list(change) for change in inputs.rule.changes],
            },
            "commit": inputs.commit,
            "data_md5": inputs.data_md5,
            "params_diff": [list(d) for d in inputs.params_diff],
            "data_diff": [vars(d) for d in inputs.data_diff],
        },
    )
    return out / "report.md"


def append_job_summary(report: Path) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        raise OSError(
            "GITHUB_STEP_SUMMARY is not set: --job-summary writes the GitHub Actions "
            "job summary (set it to a file to try it locally)"
        )
    if not report.is_file():
        raise OSError(f"{report}: not found (run `flightdelay report` first)")
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(for_job_summary(report.read_text(encoding="utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.io import DataFileError
    from flightdelay.params import ParamsError, load_params

    parser = argparse.ArgumentParser(
        prog="flightdelay report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--base", help="base branch (default: $GITHUB_BASE_REF, else main)")
    parser.add_argument(
        "--champion-ref",
        default="prod",
        metavar="REF",
        help="the production model: 'prod' (GTO's prod version) or a git ref",
    )
    parser.add_argument(
        "--job-summary",
        action="store_true",
        help="append the written report.md to $GITHUB_STEP_SUMMARY and exit",
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the latency timing")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_params(args.params)
        out = params.paths.report
        if args.job_summary:
            append_job_summary(out / "report.md")
            print(f"report: {out / 'report.md'} appended to the job summary")
            return 0
        inputs = gather(
            params,
            Path(args.params),
            base_ref(args.base),
            args.champion_ref,
            measure=not args.no_latency,
        )
        # Plots of a run that did not get that far would be stale: show none then.
        shutil.rmtree(out / IMAGE_DIR, ignore_errors=True)
        images = copy_images(params, out) if inputs.skipped_models is None else {}
        path = write_report(inputs, out, images)
    except (ParamsError, DataFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"report: {inputs.verdict.headline()} -> {path} and {out / 'report.html'} "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return 0

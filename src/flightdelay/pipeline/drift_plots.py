"""The drift stage's figures and the data behind them: binned distributions of both samples,
one CSV per figure for `dvc plots`, and the PNGs the pull-request comment shows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flightdelay.pipeline.stattests import Kind

if TYPE_CHECKING:
    from flightdelay.pipeline.drift import DriftReport

DISTRIBUTION_BINS = 30
DISTRIBUTION_CATEGORIES = 12  # most frequent categories shown; the rest pooled as "(other)"
NULL_LABEL = "(null)"


def distribution(reference: pd.Series, current: pd.Series, kind: Kind) -> pd.DataFrame:
    """Shares of both samples (columns ``bin``, ``reference``, ``current``) per bin: numeric,
    30 equal bins over the central 99% of both samples (outliers in the end bins); categorical,
    the 12 most frequent categories and the rest pooled as "(other)". Nulls get their own row."""
    n_ref, n_cur = max(len(reference), 1), max(len(current), 1)
    if kind == "numeric":
        ref = reference.to_numpy(dtype="float64", na_value=np.nan)
        cur = current.to_numpy(dtype="float64", na_value=np.nan)
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        both = np.concatenate([ref, cur])
        low, high = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, DISTRIBUTION_BINS + 1)
        table = pd.DataFrame(
            {
                "bin": [f"{e:.4g}" for e in edges[:-1]],
                "reference": np.histogram(np.clip(ref, low, high), edges)[0] / n_ref,
                "current": np.histogram(np.clip(cur, low, high), edges)[0] / n_cur,
            }
        )
    else:
        ref_counts = reference.value_counts()
        cur_counts = current.value_counts()
        total = ref_counts.add(cur_counts, fill_value=0).sort_values(ascending=False)
        top = list(total.index[:DISTRIBUTION_CATEGORIES])
        table = pd.DataFrame(
            {
                "bin": [str(k) for k in top],
                "reference": [ref_counts.get(k, 0) / n_ref for k in top],
                "current": [cur_counts.get(k, 0) / n_cur for k in top],
            }
        )
        if len(total) > len(top):
            rest = {
                "bin": "(other)",
                "reference": ref_counts[~ref_counts.index.isin(top)].sum() / n_ref,
                "current": cur_counts[~cur_counts.index.isin(top)].sum() / n_cur,
            }
            table = pd.concat([table, pd.DataFrame([rest])], ignore_index=True)
    if reference.isna().any() or current.isna().any():
        nulls = {
            "bin": NULL_LABEL,
            "reference": float(reference.isna().sum()) / n_ref,
            "current": float(current.isna().sum()) / n_cur,
        }
        table = pd.concat([table, pd.DataFrame([nulls])], ignore_index=True)
    return table


def plot_data(report: DriftReport) -> dict[str, pd.DataFrame]:
    """The data behind every figure, one CSV each for `dvc plots`."""
    table = report.features.table()
    scores = table.loc[
        table["status"] == "ok", ["column", "method", "score", "threshold", "severity", "drifted"]
    ]
    perf = report.summary().performance
    performance = pd.DataFrame(
        [
            {
                "month": m,
                "metric": perf.metric,
                "value": v,
                "role": "current" if m == report.current_month else "backtest",
            }
            for m, v in perf.by_month.items()
        ],
        columns=["month", "metric", "value", "role"],
    )
    distributions = pd.concat(
        [d.assign(feature=c) for c, d in report.distributions.items()] or [pd.DataFrame()],
        ignore_index=True,
    )
    data = {
        "drift_scores": scores.rename(columns={"column": "feature"}),
        "late_rate": report.late_rates,
        "performance": performance,
        "distributions": distributions,
    }
    if report.score_distribution is not None:
        data["scores"] = report.score_distribution
    return data


def write_figures(report: DriftReport, directory: Path) -> list[Path]:
    """PNGs: most-drifted distributions, drift scores, late rate and metric by month, scores."""
    import matplotlib

    from flightdelay.pipeline.drift import MONTH  # imported here: drift imports this module

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    ref_label = f"reference {report.reference_months[0]}..{report.reference_months[-1]}"
    cur_label = f"current {report.current_month}"

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(directory / name, dpi=100)
        plt.close(fig)
        written.append(directory / name)

    def overlay(ax: Any, frame: pd.DataFrame, title: str, reference: str = ref_label) -> None:
        x = np.arange(len(frame))
        ax.bar(x - 0.2, frame["reference"], width=0.4, label=reference, color="tab:blue")
        ax.bar(x + 0.2, frame["current"], width=0.4, label=cur_label, color="tab:orange")
        step = max(1, len(frame) // 8)
        ax.set_xticks(x[::step], frame["bin"].iloc[::step], rotation=45, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("share")

    # Overlaid distributions of the most-drifted features.
    by_column = {c.column: c for c in report.features.columns}
    if report.distributions:
        n = len(report.distributions)
        cols = min(3, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        for ax, (column, frame) in zip(axes.flat, report.distributions.items(), strict=False):
            c = by_column[column]
            score = "" if c.score is None else f" {c.method} {c.score:.3g}"
            overlay(ax, frame, f"{column}:{score}{' DRIFT' if c.drifted else ''}")
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=7)
        save(fig, "distributions.png")

    # Drift score per feature, as a multiple of its threshold (> 1: drifted).
    table = report.features.table()
    table = table[table["status"] == "ok"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.22 * len(table) + 1)))
    colors = ["tab:red" if d else "tab:grey" for d in table["drifted"]]
    ax.barh(table["column"], table["severity"].clip(upper=10), color=colors)
    ax.axvline(1.0, color="black", linestyle=":")
    ax.set(
        xlabel="drift score / threshold (p-value tests: threshold / p), capped at 10",
        title=f"feature drift {report.current_month}: {report.features.n_drifted}/"
        f"{len(report.features.counted)} drifted",
    )
    ax.tick_params(axis="y", labelsize=7)
    save(fig, "drift_scores.png")

    # Late rate by month.
    rates = report.late_rates
    fig, ax = plt.subplots(figsize=(6, 3.2))
    role_color = {"reference": "tab:blue", "current": "tab:orange", "other": "tab:grey"}
    ax.bar(rates[MONTH], rates["late_rate"], color=[role_color[r] for r in rates["role"]])
    ax.set(
        ylabel="late share",
        title=f"late rate by month (label drift: {'yes' if report.label.drifted else 'no'})",
    )
    ax.tick_params(axis="x", rotation=45)
    save(fig, "late_rate.png")

    # Metric by month: backtest months and the current one.
    perf = report.summary().performance
    fig, ax = plt.subplots(figsize=(6, 3.2))
    months = list(perf.by_month)
    values = list(perf.by_month.values())
    ax.plot(months, values, marker="o", color="tab:blue")
    if report.current_month in perf.by_month:
        ax.plot([report.current_month], [perf.by_month[report.current_month]], marker="o",
                color="tab:orange", linestyle="none", label=cur_label)  # fmt: skip
    if perf.available:
        ax.axhline(perf.measured()[1], color="grey", linestyle=":", label="worst earlier")
    if months:
        ax.legend(fontsize=7)
    ax.set(
        ylabel=perf.metric,
        title=f"{perf.metric} by month (performance drift: "
        f"{'yes' if perf.drifted else 'no' if perf.available else 'n/a'})",
    )
    save(fig, "performance.png")

    if report.score_distribution is not None and report.prediction is not None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        p, r = report.prediction, report.score_reference
        overlay(
            ax,
            report.score_distribution,
            f"predicted late probability: {p.method} {p.score:.3g}{' DRIFT' if p.drifted else ''}",
            ref_label
            if r is None
            else f"{'backtest' if r.source == 'backtest' else 'in-sample'} "
            f"{r.months[0]}..{r.months[-1]}",
        )
        ax.legend(fontsize=7)
        save(fig, "scores.png")
    return written

"""The report's figures, drawn for the width GitHub shows a comment at (about 780 px).

Every figure is at most 780 px wide at its natural size, with 9-point text, in the Okabe–Ito
palette (safe for the common colour-vision deficiencies) and with a second cue besides colour
(line style, hatching) wherever two things are compared. The report draws only the figures its
markdown references (:meth:`flightdelay.loop.report_view.ReportView.image_names`).

- ``evaluation-curves``: ROC, precision-recall and calibration of this change, main and prod,
  each model scored on the same evaluation flights;
- ``evaluation-confusion``: this change's confusion matrix at its exact decision threshold;
- ``drift-*``: drift scores, late rate, metric by month, distributions and predicted
  probabilities, from drift's plot data (``${paths.drift}/plots/*.csv``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.drift_summary import PerformanceDrift

WIDTH_IN = 7.8  # inches at DPI: 780 px, the width of a GitHub comment
DPI = 100
#: Okabe & Ito (2008): distinguishable with protanopia, deuteranopia and tritanopia.
BLUE, ORANGE, GREEN, VERMILLION, SKY, GREY = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#56B4E9",
    "#7F7F7F",
)
TEXT = "#1f2328"
#: Colour and line style of each compared model, in order: this change, main, prod.
STYLES = ((BLUE, "-"), (ORANGE, "--"), (GREEN, ":"))
DRIFT_FIGURES = {
    "drift-scores": "drift_scores",
    "drift-late_rate": "late_rate",
    "drift-performance": "performance",
    "drift-distributions": "distributions",
    "drift-predictions": "scores",
}


class PlotError(ValueError):
    """A figure the report references has no data to be drawn from."""


@dataclass(frozen=True)
class Curves:
    """Scores of this change and of its baselines on the same evaluation flights."""

    y: np.ndarray
    scores: Mapping[str, np.ndarray]  # name -> scores, this change first
    threshold: float  # this change's decision threshold
    month: str = ""


@dataclass(frozen=True)
class PlotData:
    curves: Curves | None = None
    drift: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # drift's plot CSVs by stem
    current_month: str = ""
    performance: PerformanceDrift | None = None  # drift.json's
    top_features: int = 12


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "text.color": TEXT,
            "axes.labelcolor": TEXT,
            "xtick.color": TEXT,
            "ytick.color": TEXT,
            "axes.edgecolor": "#59636e",
            "axes.grid": True,
            "grid.color": "#d1d9e0",
            "grid.linewidth": 0.6,
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
        }
    )
    return plt


def _figure(plt: Any, height: float, cols: int = 1, rows: int = 1) -> tuple[Any, Any]:
    return plt.subplots(rows, cols, figsize=(WIDTH_IN, height), squeeze=False)


def luminance(colour: Any) -> float:
    """WCAG 2 relative luminance of a matplotlib colour."""
    from matplotlib.colors import to_rgb

    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: Any, b: Any) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21; text wants at least 4.5)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def curves_figure(c: Curves) -> Any:
    """ROC, precision-recall and calibration of every model, overlaid."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    plt = _pyplot()
    fig, axes = _figure(plt, 3.0, cols=3)
    roc, pr, cal = axes[0]
    for (name, scores), (colour, style) in zip(c.scores.items(), STYLES, strict=False):
        fpr, tpr, _ = roc_curve(c.y, scores)
        precision, recall, _ = precision_recall_curve(c.y, scores)
        observed, predicted = calibration_curve(c.y, scores, n_bins=10, strategy="quantile")
        kw = {"color": colour, "linestyle": style, "linewidth": 1.8}
        roc.plot(fpr, tpr, label=f"{name} ({roc_auc_score(c.y, scores):.3f})", **kw)
        pr.plot(
            recall, precision, label=f"{name} ({average_precision_score(c.y, scores):.3f})", **kw
        )
        cal.plot(predicted, observed, marker="o", markersize=3, label=name, **kw)
    for ax in (roc, cal):
        ax.plot([0, 1], [0, 1], color=GREY, linewidth=0.8, linestyle=(0, (1, 3)))
    pr.axhline(float(np.mean(c.y)), color=GREY, linewidth=0.8, linestyle=(0, (1, 3)))
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUC)")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall (AP)")
    top = max(float(np.max(s)) for s in c.scores.values())
    cal.set(
        xlabel="mean predicted probability",
        ylabel="observed late share",
        title="calibration (deciles)",
        xlim=(0, min(1.0, top + 0.05)),
        ylim=(0, min(1.0, top + 0.05)),
    )
    for ax in (roc, pr):
        ax.legend(loc="lower right" if ax is roc else "upper right", frameon=True)
    cal.legend(loc="upper left", frameon=True)
    if c.month:
        every = ", every model on the same flights" if len(c.scores) > 1 else ""
        fig.suptitle(f"{c.month}, {len(c.y):,} flights{every}")
    return fig


def confusion_figure(c: Curves) -> Any:
    """This change's confusion matrix at its exact threshold; text dark or light by the cell."""
    from matplotlib.colors import LinearSegmentedColormap

    plt = _pyplot()
    this = next(iter(c.scores.values()))
    late = c.y == 1
    flagged = this >= c.threshold
    table = np.array(
        [[np.sum(~late & ~flagged), np.sum(~late & flagged)],
         [np.sum(late & ~flagged), np.sum(late & flagged)]]
    )  # fmt: skip
    share = table / table.sum(axis=1, keepdims=True)
    # Light to sky blue: every cell stays light enough for dark text (contrast >= 4.5).
    cmap = LinearSegmentedColormap.from_list("report", ["#f6f8fa", SKY])
    fig, axes = plt.subplots(figsize=(4.6, 3.2))
    axes.imshow(share, cmap=cmap, vmin=0, vmax=1)
    axes.grid(False)
    for (i, j), value in np.ndenumerate(table):
        cell = cmap(share[i, j])[:3]
        axes.text(
            j,
            i,
            f"{value:,}\n{100 * share[i, j]:.1f} % of row",
            ha="center",
            va="center",
            fontsize=10,
            color=max(("white", TEXT), key=lambda text: contrast(cell, text)),
        )
    axes.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["on time", "late"],
        yticklabels=["on time", "late"],
        xlabel="predicted (late when score ≥ threshold)",
        ylabel="actual",
    )
    axes.set_title(f"{next(iter(c.scores))}, threshold {c.threshold!r}", fontsize=9)
    return fig


def _need(data: PlotData, stem: str) -> pd.DataFrame:
    frame = data.drift.get(stem)
    if frame is None or frame.empty:
        raise PlotError(f"no drift plot data '{stem}.csv' for the report's figure")
    return frame


def drift_scores_figure(data: PlotData) -> Any:
    plt = _pyplot()
    frame = _need(data, "drift_scores").sort_values("severity", ascending=False)
    shown = frame.head(data.top_features).iloc[::-1]
    fig, axes = _figure(plt, max(2.4, 0.24 * len(shown) + 1.0))
    ax = axes[0][0]
    drifted = shown["drifted"].astype(str).str.lower() == "true"
    ax.barh(
        shown["feature"],
        shown["severity"].clip(upper=10),
        color=[VERMILLION if d else GREY for d in drifted],
    )
    ax.axvline(1.0, color=TEXT, linestyle=":", linewidth=1)
    n = int((frame["drifted"].astype(str).str.lower() == "true").sum())
    ax.set(
        xlabel="drift score ÷ threshold (capped at 10); right of the dotted line: drifted",
        title=f"{data.current_month}: {n} of {len(frame)} features drifted"
        + (f" (the {len(shown)} most drifted shown)" if len(frame) > len(shown) else ""),
    )
    return fig


def late_rate_figure(data: PlotData) -> Any:
    from flightdelay.core.stats import wilson

    plt = _pyplot()
    frame = _need(data, "late_rate")
    fig, axes = _figure(plt, 2.8)
    ax = axes[0][0]
    colours = {"reference": SKY, "current": VERMILLION}
    rates = frame["late_rate"].astype(float)
    low_high = [wilson(r * n, int(n)) for r, n in zip(rates, frame["flights"], strict=True)]
    errors = np.array([[r - lo for (lo, _), r in zip(low_high, rates, strict=True)],
                       [hi - r for (_, hi), r in zip(low_high, rates, strict=True)]])  # fmt: skip
    ax.bar(
        frame["month"],
        rates,
        color=[colours.get(r, GREY) for r in frame["role"]],
        hatch=["//" if r == "current" else "" for r in frame["role"]],
        edgecolor=TEXT,
        linewidth=0.4,
        yerr=errors,
        ecolor=TEXT,
        capsize=2,
    )
    ax.set(ylabel="late share", title="late rate by month (95 % interval); hatched: current")
    ax.tick_params(axis="x", rotation=45)
    return fig


def performance_figure(data: PlotData) -> Any:
    plt = _pyplot()
    frame = _need(data, "performance")
    perf = data.performance
    fig, axes = _figure(plt, 2.8)
    ax = axes[0][0]
    ax.plot(frame["month"], frame["value"], color=BLUE, marker="o", label="backtest months")
    current = frame[frame["role"] == "current"]
    ax.plot(current["month"], current["value"], color=VERMILLION, marker="D", markersize=8,
            linestyle="none", label=f"current {data.current_month}")  # fmt: skip
    if perf is not None and perf.available:
        _, worst, _ = perf.measured()
        ax.axhline(worst, color=GREY, linestyle=":", label="worst earlier month")
        ax.axhline(worst - perf.max_drop, color=VERMILLION, linestyle="--",
                   linewidth=1, label="drift below this")  # fmt: skip
    from flightdelay.core.stats import LABELS

    metric = LABELS.get(str(frame["metric"].iloc[0]), str(frame["metric"].iloc[0]))
    flag = "n/a" if perf is None else "yes" if perf.drifted else "no" if perf.available else "n/a"
    ax.set(ylabel=metric, title=f"{metric} by month (performance drift: {flag})")
    ax.legend(loc="lower left", frameon=True)
    return fig


def _bin(value: Any) -> str:
    """A bin's tick label: numbers to three significant digits, categories as they are."""
    try:
        return f"{float(value):.3g}".replace("-", "\u2212")
    except (TypeError, ValueError):
        return str(value)


def _overlay(ax: Any, frame: pd.DataFrame, title: str, labels: tuple[str, str]) -> None:
    x = np.arange(len(frame))
    ax.bar(x - 0.2, frame["reference"], width=0.4, label=labels[0], color=SKY)
    ax.bar(x + 0.2, frame["current"], width=0.4, label=labels[1], color=VERMILLION, hatch="//",
           edgecolor="white", linewidth=0)  # fmt: skip
    step = max(1, len(frame) // 6)
    ax.set_xticks(x[::step], [_bin(b) for b in frame["bin"].iloc[::step]], rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel("share")


def distributions_figure(data: PlotData) -> Any:
    plt = _pyplot()
    frame = _need(data, "distributions")
    scores = data.drift.get("drift_scores")
    features = list(dict.fromkeys(frame["feature"]))
    if scores is not None and not scores.empty:
        order = scores.sort_values("severity", ascending=False)["feature"].tolist()
        features = [f for f in order if f in features] + [f for f in features if f not in order]
    features = features[:4]
    rows = -(-len(features) // 2)
    fig, axes = _figure(plt, 2.6 * rows, cols=2, rows=rows)
    for ax, name in zip(axes.flat, features, strict=False):
        _overlay(ax, frame[frame["feature"] == name], name, ("reference", "current"))
    for ax in list(axes.flat)[len(features) :]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=True)
    fig.suptitle(f"distributions of the {len(features)} most-drifted features")
    return fig


def predictions_figure(data: PlotData) -> Any:
    plt = _pyplot()
    frame = _need(data, "scores")
    fig, axes = _figure(plt, 2.8)
    _overlay(
        axes[0][0],
        frame,
        "predicted late probability: reference scores and the current month's",
        ("reference", f"current {data.current_month}"),
    )
    axes[0][0].legend(frameon=True)
    return fig


def drawable(data: PlotData) -> set[str]:
    """The figures ``data`` can draw."""
    names = {"evaluation-curves", "evaluation-confusion"} if data.curves is not None else set()
    return names | {name for name, stem in DRIFT_FIGURES.items() if stem in data.drift}


def figure(name: str, data: PlotData) -> Any:
    """The matplotlib figure of one report image."""
    evaluation = {"evaluation-curves": curves_figure, "evaluation-confusion": confusion_figure}
    drift = {
        "drift-scores": drift_scores_figure,
        "drift-late_rate": late_rate_figure,
        "drift-performance": performance_figure,
        "drift-distributions": distributions_figure,
        "drift-predictions": predictions_figure,
    }
    if name in evaluation:
        if data.curves is None:
            raise PlotError(f"no evaluation scores for the report's figure '{name}'")
        return evaluation[name](data.curves)
    if name not in drift:
        raise PlotError(f"the report references an unknown figure '{name}'")
    return drift[name](data)


def draw(names: Sequence[str], data: PlotData, directory: Path) -> list[Path]:
    """Write ``directory/<name>.png`` for exactly ``names`` (nothing else is left there)."""
    import shutil

    plt = _pyplot()
    shutil.rmtree(directory, ignore_errors=True)
    written = []
    for name in names:
        fig = figure(name, data)
        fig.tight_layout()
        directory.mkdir(parents=True, exist_ok=True)
        fig.savefig(directory / f"{name}.png", dpi=DPI, metadata={"Software": None})
        plt.close(fig)
        written.append(directory / f"{name}.png")
    return written


def read_drift_data(directory: Path) -> dict[str, pd.DataFrame]:
    """drift's plot CSVs (``${paths.drift}/plots``), by stem; absent ones are left out."""
    return {
        stem: pd.read_csv(directory / f"{stem}.csv")
        for stem in DRIFT_FIGURES.values()
        if (directory / f"{stem}.csv").is_file()
    }

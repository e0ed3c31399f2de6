"""The model of another git ref, scored on this evaluation set: metric deltas with paired bootstrap
confidence intervals, each marked as a real change or noise.

Pure core: :func:`compare` takes one frame (``y_true``, the challenger's ``score``, the baseline's
``baseline_score`` and the slice columns) and returns a :class:`Comparison`. Both models are
judged on the *same* rows, so the interval is of a paired difference: each resample draws rows
with replacement once and scores both models on them. The interval is the percentile interval of
``bootstrap.samples`` such deltas (``bootstrap:`` params); a change is **real** when the
interval excludes 0, otherwise it is **noise**.

The resampling and its metrics are :mod:`flightdelay.core.stats` (one statistics module for the
report, the gate and the card).

The baseline model comes from :func:`flightdelay.core.revisions.materialise` (what was at revision
X).
The baseline is scored on the current evaluation rows with features built by the current code,
with the featurize params recorded in its own model.json, against the current context.

``flightdelay compare [--ref REF]`` prints the comparison with REF (default ``main``) and writes
it as JSON (``--output``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay import MODEL_NAME
from flightdelay.core.revisions import RevisionError, champion_ref, materialise
from flightdelay.core.stats import LABELS, Delta, paired_bootstrap, slice_seed

#: A baseline model cannot be found, materialised (flightdelay.core.revisions) or scored (here): one
#: error type for both, so every caller that compares catches one thing.
CompareError = RevisionError


# ---------------------------------------------------------------- pure core: comparison


@dataclass(frozen=True)
class SliceDelta:
    column: str
    value: str
    n: int
    delta: Delta

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "value": self.value, "n": self.n, **self.delta.to_json()}


@dataclass(frozen=True)
class Comparison:
    """The challenger against one baseline (main, or the production model) on identical rows."""

    baseline: str  # how the report names it: "main", "prod (flight-delay@v1.2.0)"
    commit: str
    n: int
    samples: int
    confidence: float
    metrics: dict[str, Delta]
    slices: list[SliceDelta] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline_sha256: str | None = None
    # The baseline's scores on the rows (for the report's overlaid curves); not serialised.
    baseline_scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "commit": self.commit,
            "n": self.n,
            "samples": self.samples,
            "confidence": self.confidence,
            "metrics": {k: d.to_json() for k, d in self.metrics.items()},
            "slices": [s.to_json() for s in self.slices],
            "notes": list(self.notes),
            "baseline_sha256": self.baseline_sha256,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Comparison:
        def delta(d: Mapping[str, Any]) -> Delta:
            return Delta(d["metric"], d["challenger"], d["baseline"], d["low"], d["high"])

        return cls(
            baseline=raw["baseline"],
            commit=raw["commit"],
            n=raw["n"],
            samples=raw["samples"],
            confidence=raw["confidence"],
            metrics={k: delta(v) for k, v in raw["metrics"].items()},
            slices=[
                SliceDelta(s["column"], s["value"], s["n"], delta(s)) for s in raw.get("slices", [])
            ],
            notes=list(raw.get("notes", [])),
            baseline_sha256=raw.get("baseline_sha256"),
        )


def compare(
    frame: pd.DataFrame,
    thresholds: tuple[float, float],
    *,
    baseline: str,
    commit: str,
    samples: int,
    confidence: float,
    seed: int,
    slice_columns: Sequence[str] = (),
    slice_min_rows: int = 1,
    slice_metric: str = "roc_auc",
    notes: Sequence[str] = (),
    baseline_sha256: str | None = None,
) -> Comparison:
    """Challenger (``score``) against baseline (``baseline_score``) on the rows of ``frame``.

    Slices with at least ``slice_min_rows`` rows and both classes get their own paired interval
    of ``slice_metric`` (resampled within the slice).
    """
    missing = [
        c for c in ("y_true", "score", "baseline_score", *slice_columns) if c not in frame.columns
    ]
    if missing:
        raise CompareError(f"the comparison frame lacks column(s) {missing}")
    y = frame["y_true"].to_numpy()
    a, b = frame["score"].to_numpy(), frame["baseline_score"].to_numpy()
    metrics = paired_bootstrap(y, a, b, thresholds, samples, confidence, seed)
    slices = []
    for column in slice_columns:
        for value, rows in frame.groupby(column, sort=True).indices.items():
            ys = y[rows]
            if len(rows) < slice_min_rows or len(np.unique(ys)) < 2:
                continue
            d = paired_bootstrap(
                ys,
                a[rows],
                b[rows],
                thresholds,
                samples,
                confidence,
                slice_seed(seed, column, str(value)),
                metrics=(slice_metric,),
            )
            slices.append(SliceDelta(column, str(value), len(rows), d[slice_metric]))
    return Comparison(
        baseline=baseline,
        commit=commit,
        n=len(frame),
        samples=samples,
        confidence=confidence,
        metrics=metrics,
        slices=slices,
        notes=list(notes),
        baseline_sha256=baseline_sha256,
        baseline_scores=b,
    )


# ---------------------------------------------------------------- I/O edge: scoring


def schema_columns(metadata: Mapping[str, Any]) -> list[str]:
    return [str(c["name"]) for c in metadata.get("input_schema", [])]


def baseline_features(
    predictions: pd.DataFrame,
    metadata: Mapping[str, Any],
    current_featurize: Mapping[str, Any],
    flights: Path,
    context: Path,
    month: str,
) -> tuple[pd.DataFrame, list[str]]:
    """The baseline's input columns for the evaluation rows of ``predictions``: reused when it
    was trained with the same featurize params, else rebuilt (current code, its params, current
    context). Returns the frame and notes for the report."""
    needed = schema_columns(metadata)
    own = metadata.get("featurize") or current_featurize
    if own == dict(current_featurize) and set(needed) <= set(predictions.columns):
        return predictions.loc[:, needed], []
    from flightdelay.core.features import build_features
    from flightdelay.core.io import read_csv
    from flightdelay.core.model_io import read_context
    from flightdelay.core.params import FeaturizeParams
    from flightdelay.pipeline.featurize import flight_ids

    raw = read_csv(flights / f"{month}.csv")
    raw.index = pd.Index(flight_ids(raw))
    raw = raw[~raw.index.duplicated()]
    missing_rows = ~predictions["flight_id"].isin(raw.index)
    if missing_rows.any():
        raise CompareError(
            f"{int(missing_rows.sum())} evaluation flights are not in {flights / (month + '.csv')}"
        )
    rows = raw.loc[predictions["flight_id"].to_numpy()]
    built = build_features(rows, read_context(context), FeaturizeParams.model_validate(own))
    lost = [c for c in needed if c not in built.columns]
    if lost:
        raise CompareError(
            f"the baseline model needs feature(s) {lost} that this code no "
            "longer builds: not comparable"
        )
    changed = {
        k: (own.get(k), current_featurize.get(k))
        for k in current_featurize
        if own.get(k) != current_featurize.get(k)
    }
    what = ", ".join(f"{k}: {old} → {new}" for k, (old, new) in changed.items())
    notes = [f"its features were rebuilt with its own featurize params ({what} in this change)"]
    if any(k in changed for k in ("target_delay_minutes", "cancelled")):
        notes.append(
            "the target definition changed: both models are judged on this change's target"
        )
    return built.loc[:, needed].reset_index(drop=True), notes


def score_baseline(bundle: Any, features: pd.DataFrame) -> np.ndarray:
    return np.asarray(bundle.pipeline.predict_proba(features)[:, 1], dtype=np.float64)


@dataclass(frozen=True)
class Evaluated:
    """The challenger's side, read once from the pipeline outputs."""

    predictions: pd.DataFrame
    threshold: float
    month: str
    featurize: dict[str, Any]
    sha256: str | None


def read_challenger(params: Any) -> Evaluated:
    """Predictions, threshold and evaluation month of this work tree's model."""
    from flightdelay.core.io import DataFileError
    from flightdelay.core.model_io import read_metadata

    paths = params.paths
    if not paths.predictions.is_file():
        raise CompareError(f"{paths.predictions}: not found (run `dvc repro evaluate`)")
    predictions = pd.read_parquet(paths.predictions)
    try:
        metadata = read_metadata(paths.model)
    except DataFileError as exc:
        raise CompareError(str(exc)) from None
    return Evaluated(
        predictions,
        metadata.threshold,
        metadata.eval_month,
        params.featurize.model_dump(),
        metadata.sha256,
    )


def compare_with(
    commit: str,
    label: str,
    params: Any,
    challenger: Evaluated,
    repo: Path = Path("."),
    allow_reproduce: bool = True,
) -> Comparison:
    """Materialise the model of ``commit``, score it on the challenger's evaluation rows, and
    compare (the whole edge: git, DVC, files)."""
    from flightdelay.core.io import DataFileError
    from flightdelay.core.model_io import load_model_bundle

    baseline = materialise(commit, repo, allow_reproduce=allow_reproduce)
    try:
        bundle = load_model_bundle(baseline.model_dir)
        features, notes = baseline_features(
            challenger.predictions,
            bundle.metadata,
            challenger.featurize,
            params.paths.flights,
            params.paths.context,
            challenger.month,
        )
    except DataFileError as exc:
        raise CompareError(str(exc)) from None
    frame = challenger.predictions.loc[:, ["y_true", "score", *params.gate.slice_columns]].copy()
    frame["baseline_score"] = score_baseline(bundle, features)
    return compare(
        frame,
        (challenger.threshold, bundle.threshold),
        baseline=label,
        commit=commit,
        samples=params.bootstrap.samples,
        confidence=params.bootstrap.confidence,
        seed=params.bootstrap.seed,
        slice_columns=params.gate.slice_columns,
        slice_min_rows=params.gate.slice_min_rows,
        slice_metric=params.gate.metric,
        notes=[f"{label}'s model: {baseline.source}", *notes],
        baseline_sha256=bundle.info.sha256,
    )


def format_comparison(c: Comparison) -> str:
    """The comparison as a few lines of text (the CLI's output)."""
    level = f"{100 * c.confidence:g}%"
    lines = [f"vs {c.baseline} ({c.commit[:12]}), {c.n:,} rows, {c.samples} paired resamples:"]
    for d in c.metrics.values():
        lines.append(
            f"  {LABELS.get(d.metric, d.metric):<12} {d.challenger:.4f} vs "
            f"{d.baseline:.4f}  delta {d.delta:+.4f}  {level} CI [{d.low:+.4f}, "
            f"{d.high:+.4f}]  {d.verdict}"
        )
    lines += [f"  note: {n}" for n in c.notes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.io import write_json
    from flightdelay.core.params import ParamsError, load_params

    parser = argparse.ArgumentParser(
        prog="flightdelay compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--ref", default="main", help="git ref of the baseline, or 'prod' for GTO's prod version"
    )
    parser.add_argument("--output", type=Path, help="write the comparison as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_params(args.params)
        found = champion_ref(args.ref)
        if found is None:
            print(f"no baseline: no version of {MODEL_NAME} is assigned to prod")
            return 1
        challenger = read_challenger(params)
        comparison = compare_with(found[0], found[1], params, challenger)
    except (ParamsError, CompareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        write_json(args.output, comparison.to_json())
    print(format_comparison(comparison) + f"\n({time.perf_counter() - started:.1f}s)")
    return 0

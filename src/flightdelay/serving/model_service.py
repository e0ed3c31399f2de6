"""The model side of the service, no HTTP: row rules, warnings and scores of raw flight columns
with the loaded model bundle (:class:`ModelService`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.context import check_rows
from flightdelay.core.features import aircraft_warning, build_features, feature_arrays
from flightdelay.core.flights import RAW_COLUMNS, to_minutes
from flightdelay.core.model_io import ModelBundle, ModelBundleError
from flightdelay.core.schemas import CALENDAR_COLUMNS, calendar_rules
from flightdelay.serving.scoring import SCORE_TOLERANCE, TreeliteScorer, UnsupportedPipelineError

log = logging.getLogger("flightdelay.serving.serve")  # the service's one logger

INT_COLUMNS = ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight")
FLOAT_COLUMNS = ("distance",)

Columns = dict[str, list[Any]]


def known_categories(bundle: ModelBundle) -> dict[str, frozenset[str]]:
    """Categories the fitted encoder knows per categorical feature (the context's values if the
    pipeline has no OrdinalEncoder inside a ColumnTransformer)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    for step in bundle.pipeline:
        if not isinstance(step, ColumnTransformer):
            continue
        for _, transformer, columns in step.transformers_:
            if isinstance(transformer, OrdinalEncoder):
                return {
                    str(c): frozenset(v for v in cats if isinstance(v, str))
                    for c, cats in zip(columns, transformer.categories_, strict=True)
                }
    departures = bundle.context.departures
    return {c: frozenset(departures[c].dropna().astype(str)) for c in ("carrier", "origin", "dest")}


@dataclass(frozen=True)
class RowError:
    loc: tuple[str | int, ...]  # within the body: (field,) or (row, field)
    msg: str
    type: str


class ModelService:
    """The loaded bundle and what serving needs to know about it (pure: no HTTP).

    Scores come from :class:`flightdelay.serving.scoring.TreeliteScorer` (treelite, compiled by
    tl2cgen when a C compiler is there) when the service's whole scoring path equals
    ``build_features`` + ``pipeline.predict_proba`` within SCORE_TOLERANCE (1e-12) on
    :func:`flightdelay.core.context.check_rows`, alone and in batches (checked here, at start-up),
    else from the pipeline itself; ``self.predictor`` says which ("treelite-compiled",
    "treelite-gtil" or "pipeline").
    """

    def __init__(self, bundle: ModelBundle, n_threads: int = 1, batch_threads: int = 1) -> None:
        self.bundle = bundle
        self.pipeline = bundle.pipeline
        self.context = bundle.context
        self.params = bundle.featurize_params
        self.threshold = bundle.threshold
        categories = known_categories(bundle)
        missing = [c for c in ("carrier", "origin", "dest") if c not in categories]
        if missing:
            raise ModelBundleError(f"the model's encoder lacks categorical feature(s) {missing}")
        self.carriers = categories["carrier"]
        self.origins = categories["origin"]
        self.dests = categories["dest"]
        self.tailnums = frozenset(self.context.departures["tailnum"].dropna().astype(str))
        sched = to_minutes(self.context.departures["sched_dep_at"])
        sched = sched[np.isfinite(sched)]
        if not len(sched):
            raise ModelBundleError("the model's context holds no scheduled departure")
        self.first_day, self.last_day = int(sched.min() // 1440), int(sched.max() // 1440)
        self._first_date, self._last_date = (
            int(_iso(d).replace("-", "")) for d in (self.first_day, self.last_day)
        )
        self.scorer: TreeliteScorer | None = None
        self.predictor = "pipeline"
        self.predictor_note = ""
        try:
            scorer = TreeliteScorer.compile(
                self.pipeline,
                key=bundle.metadata["sha256"],
                n_threads=n_threads,
                batch_threads=batch_threads,
            )
            mismatch, largest = self._compare(scorer)
        except UnsupportedPipelineError as exc:
            self.predictor_note = f"treelite scorer unavailable: {exc}"
        except Exception as exc:  # treelite cannot read this model: the pipeline still works
            self.predictor_note = f"treelite scorer failed: {type(exc).__name__}: {exc}"
        else:
            if mismatch:
                self.predictor_note = f"treelite scorer refused: {mismatch}"
            else:
                self.scorer, self.predictor = scorer, scorer.runtime
                log.info(
                    "scoring with %s: equal to the pipeline within %g on the check rows "
                    "(largest difference %.2g)",
                    scorer.runtime,
                    SCORE_TOLERANCE,
                    largest,
                )
        if self.predictor_note:
            log.warning("%s; scoring with pipeline.predict_proba", self.predictor_note)

    def _pipeline_scores(self, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(features)[:, 1], dtype=np.float64)

    def _compare(self, scorer: TreeliteScorer) -> tuple[str, float]:
        """('', largest difference) if the scorer's path equals build_features +
        pipeline.predict_proba within SCORE_TOLERANCE on check rows, as one batch and in
        smaller ones; else what differs."""
        flights = check_rows(self.context)
        columns = {c: flights[c].tolist() for c in RAW_COLUMNS}
        expected = self._pipeline_scores(build_features(flights, self.context, self.params))
        parts = [(0, len(flights)), (0, 1), (1, 1), (2, 7), (9, 32)]
        largest = 0.0
        for start, size in parts:
            part = {c: values[start : start + size] for c, values in columns.items()}
            got = self._scorer_scores(scorer, part, checked=False)
            want = expected[start : start + size]
            diff = float(np.max(np.abs(got - want))) if len(want) else 0.0
            if len(got) != len(want) or not diff <= SCORE_TOLERANCE:
                return (
                    f"differs from the pipeline by {diff:.3g} (tolerance {SCORE_TOLERANCE:g}) "
                    f"on rows {start}..{start + size - 1}"
                ), diff
            largest = max(largest, diff)
        return "", largest

    def _scorer_scores(self, scorer: TreeliteScorer, columns: Columns, checked: bool) -> np.ndarray:
        # the raw columns as arrays, no frame around them (feature_arrays reads either)
        arrays = feature_arrays(to_arrays(columns), self.context, self.params, checked=checked)
        return scorer.predict_proba(arrays)

    def predict(self, columns: Columns, *, checked: bool = False) -> np.ndarray:
        """Probability of a late arrival per row: build_features, then the model's scores.
        ``checked=True``: the rows passed :meth:`check` (not checked again)."""
        if self.scorer is not None:
            return self._scorer_scores(self.scorer, columns, checked)
        return self._pipeline_scores(build_features(to_frame(columns), self.context, self.params))

    def check(self, columns: Columns) -> list[RowError]:
        """Row rules JSON Schema cannot state: real dates, HHMM minutes, a known origin; on rows
        that passed :class:`flightdelay.core.schemas.Flight` (the service's request schema)."""
        # The rules of the one definition of a valid flight row (check_flight_rows, which
        # validate and featurize apply) that can still fail on such rows: Flight states the rest.
        numbers = {c: np.asarray(columns[c], dtype=np.int64) for c in CALENDAR_COLUMNS}
        errors = [
            RowError((int(i), rule.column), rule.message(int(i)), rule.kind)
            for rule in calendar_rules(numbers)
            for i in rule.positions
        ]
        origins = columns["origin"]
        if not self.origins.issuperset(origins):
            known = ", ".join(sorted(self.origins))
            errors += [
                RowError(
                    (i, "origin"),
                    f"{origin!r} is not an origin the model was trained on ({known})",
                    "unknown_origin",
                )
                for i, origin in enumerate(origins)
                if origin not in self.origins
            ]
        return sorted(errors, key=lambda e: e.loc)

    def warnings(self, columns: Columns) -> list[list[str]]:
        """Per row: inputs the model will treat as missing (accepted, reported to the caller);
        ``columns``: rows that passed :meth:`check`."""
        out: list[list[str]] = [[] for _ in columns["origin"]]
        # Each kind is looked at row by row only if the request holds a value the model lacks.
        for name, known in (("carrier", self.carriers), ("dest", self.dests)):
            if not known.issuperset(columns[name]):
                for i, value in enumerate(columns[name]):
                    if value not in known:
                        out[i].append(
                            f"{name} {value!r} was not seen in training: treated as missing"
                        )
        tails = columns["tailnum"]
        if not self.tailnums.issuperset(tails):  # None (no aircraft) is never in tailnums
            for i, tail in enumerate(tails):
                if tail is None or tail not in self.tailnums:
                    out[i].append(aircraft_warning(tail))
        # Real dates (checked) compare as their YYYYMMDD numbers do.
        year, month, day = (
            np.asarray(columns[c], dtype=np.int64) for c in ("year", "month", "day")
        )
        dates = (year * 100 + month) * 100 + day
        outside = np.flatnonzero((dates < self._first_date) | (dates > self._last_date))
        for i in outside.tolist():
            out[i].append(
                f"date {int(year[i]):04d}-{int(month[i]):02d}-{int(day[i]):02d} is outside the "
                f"schedule in the model's context ({_iso(self.first_day)}..{_iso(self.last_day)}): "
                "weather, congestion and recent-delay features are unavailable"
            )
        return out


def _iso(day: int) -> str:
    return str(np.datetime64(day, "D"))


def to_columns(rows: Sequence[Mapping[str, Any]]) -> Columns:
    return {c: [row[c] for row in rows] for c in RAW_COLUMNS}


def to_arrays(columns: Columns) -> dict[str, np.ndarray]:
    """The raw flight columns as the training CSVs type them: integer, float and text
    (Python strings, None for a null tailnum) arrays, in RAW_COLUMNS order."""
    return {
        c: np.asarray(
            columns[c],
            dtype=np.int64 if c in INT_COLUMNS else np.float64 if c in FLOAT_COLUMNS else object,
        )
        for c in RAW_COLUMNS
    }


def to_frame(columns: Columns) -> pd.DataFrame:
    """The raw flight frame build_features takes: :func:`to_arrays` as its columns."""
    arrays = list(to_arrays(columns).values())
    n = len(arrays[0])
    # DataFrame._from_arrays skips the dtype inference and checks of the public constructor
    # (0.05 ms instead of 0.2-0.3 ms for one row); the columns are already exactly right.
    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if from_arrays is not None:
        return from_arrays(
            arrays, columns=_RAW_INDEX, index=pd.RangeIndex(n), verify_integrity=False
        )
    return pd.DataFrame(dict(zip(RAW_COLUMNS, arrays, strict=True)))


# object, not pandas' inferred str dtype: build_features reads the columns by name,
# and looking a name up in an object Index is about twice as fast
_RAW_INDEX = pd.Index(RAW_COLUMNS, dtype=object)

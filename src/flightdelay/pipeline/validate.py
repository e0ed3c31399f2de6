"""Stage ``validate``: check every raw monthly batch against the Great Expectations suites.

The suites live in the repository as GX 1.x JSON (``src/flightdelay/expectations/<table>.json``).
Each expectation's ``meta.scope`` says where it runs:

- ``batch``: the structure of each file (schema, types, row count, "every row of ``2013-04.csv``
  is April");
- ``rows``: the values (nulls, value sets, ranges, a flight key unique across batches, which is
  how a batch copied into another month's file shows up), once on all structurally sound
  batches together. Only a failed expectation is run again on each batch, so the summary counts
  its rows per batch while the passing run stays a single pass over the data.

Beside the suites, in the same summary, Data Docs index and result counts, are the checks GX
cannot state on one column, written once in Python:

- ``completeness``: every month from the first to the newest has a flights and a weather batch;
- the definition of a valid flight row (:func:`flightdelay.core.schemas.check_flight_rows`: ranges,
  codes, a real calendar date, HHMM clock times), the one ``featurize`` and the service use too;
- ``consistency``: ``hour``/``minute`` agree with ``sched_dep_time``, ``time_hour`` (UTC) is the
  local year/month/day/hour, weather days are real dates.

Offending values are quoted cut to :data:`flightdelay.core.schemas.shorten`'s length, with the
original length stated, in the summary, ``summary.json``, ``result.json`` and the Data Docs.

On failure the stage prints a short summary (expectation, column, batch, rows, a few offending
values), writes the full GX result as JSON and the Data Docs HTML, and exits non-zero, so DVC runs
nothing downstream. A file that cannot be read at all (empty, truncated, not CSV) is a failure of
its own, named, and the other files are still validated.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.io import DataFileError, batch_files, read_csv, write_json
from flightdelay.core.outputs import ValidationSummary
from flightdelay.core.params import Params, ValidateParams
from flightdelay.core.schemas import RowRule, check_flight_rows, impossible_dates, row_rule, shorten
from flightdelay.core.stage import stage_main
from flightdelay.pipeline.validate_gx import (
    Failure,
    SuiteError,
    batch_failures,
    by_scope,
    count_checks,
    drop_load_times,
    failures_per_batch,
    load_suite,
    new_batch_validator,
    write_data_docs,
)

TABLES = ("flights", "weather")
TIMEZONE = "America/New_York"  # of the three airports: year..hour are local, time_hour is UTC
# The checks beside the suites: the name a failure shows and its group, by RowRule kind.
RULE_NAMES: dict[str, tuple[str, str]] = {
    "out_of_range": ("valid flight row: value in range", "ranges"),
    "invalid_pattern": ("valid flight row: code format", "value sets"),
    "invalid_date": ("real calendar date", "consistency"),
    "invalid_hhmm": ("HHMM clock time", "consistency"),
    "disagrees": ("columns agree", "consistency"),
}
# Left to the suites (nulls, types): a rule would only report the same rows again.
SUITE_KINDS = frozenset({"missing", "not_a_number"})
# Batch-scope groups that must pass before a batch's rows can be checked with the others:
# without the right columns and types, row expectations would only report the same fault again.
STRUCTURAL_GROUPS = ("schema", "types")


@dataclass(frozen=True)
class BatchFile:
    """One monthly file of a table: its frame, or why it could not be read."""

    table: str
    name: str  # YYYY-MM
    frame: pd.DataFrame | None = None
    error: str | None = None


@dataclass
class Outcome:
    """What the stage found: JSON-ready summary, failures, and the raw GX results."""

    failures: list[Failure]
    groups: dict[str, dict[str, dict[str, int]]]  # table -> group -> {checks, failed}
    batches: dict[str, list[str]]
    rows: dict[str, int]
    skipped: dict[str, list[str]]  # table -> batches left out of row checks
    results: list[tuple[str, Any]]  # (page name, GX ExpectationSuiteValidationResult)

    @property
    def success(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "batches": self.batches,
            "rows": self.rows,
            "groups": self.groups,
            "skipped_from_row_checks": self.skipped,
            "failures": [asdict(f) for f in self.failures],
        }


# ---------------------------------------------------------------- core


def completeness(batches: dict[str, list[str]]) -> list[Failure]:
    """A failure per table that lacks a month from the first to the newest batch of any table."""
    months = sorted({name for names in batches.values() for name in names})
    if not months:
        return []
    expected, month = [], months[0]
    while month <= months[-1]:
        expected.append(month)
        year, mon = (int(p) for p in month.split("-"))
        month = f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"
    failures = []
    for table, names in batches.items():
        if missing := [m for m in expected if m not in names]:
            failures.append(
                Failure(
                    table,
                    "completeness",
                    "every month has a batch",
                    None,
                    dict.fromkeys(missing, 0),
                    f"no {table}/{', '.join(missing)}.csv: every month from {months[0]} to "
                    f"{months[-1]} needs a flights and a weather batch",
                )
            )
    return failures


def _time_hour_rule(rows: pd.DataFrame) -> RowRule:
    """``time_hour`` (UTC, ISO 8601) names the local year, month, day and hour of the row."""
    # Parsed once per distinct value (an hour has one): 250,000 rows take milliseconds.
    codes, distinct = pd.factorize(rows["time_hour"])
    parsed = pd.to_datetime(
        pd.Series(distinct, dtype=object), format="%Y-%m-%dT%H:%M:%SZ", utc=True, errors="coerce"
    ).dt.tz_convert(TIMEZONE)
    parts = ("year", "month", "day", "hour")
    local = {p: getattr(parsed.dt, p).to_numpy(np.float64, na_value=np.nan) for p in parts}
    known = (codes >= 0) & rows[list(parts)].notna().all(axis=1).to_numpy()
    disagree = np.zeros(len(rows), dtype=bool)
    for part in parts:
        disagree |= local[part][codes] != rows[part].to_numpy(np.float64, na_value=np.nan)

    def say(i: int) -> str:
        y, m, d, h = (int(rows[p].iat[i]) for p in parts)
        return (
            f"{shorten(rows['time_hour'].iat[i])!r} is not {y}-{m:02d}-{d:02d} {h:02d}h {TIMEZONE}"
        )

    return row_rule(
        "time_hour", "disagrees", "disagreeing with year/month/day/hour", known & disagree, say
    )


def consistency_rules(table: str, rows: pd.DataFrame) -> list[RowRule]:
    """The rules of one table beside its suite (rows: the structurally sound batches)."""
    if table == "flights":
        rules = [r for r in check_flight_rows(rows) if r.kind not in SUITE_KINDS]
        sched = rows["sched_dep_time"].to_numpy(np.float64, na_value=np.nan)
        for column, expected in (("hour", sched // 100), ("minute", sched % 100)):
            got = rows[column].to_numpy(np.float64, na_value=np.nan)
            rules.append(
                row_rule(
                    column,
                    "disagrees",
                    "disagreeing with sched_dep_time",
                    np.isfinite(expected) & np.isfinite(got) & (got != expected),
                    lambda i, c=column, g=got: f"{c} {g[i]:g} but sched_dep_time {sched[i]:g}",
                )
            )
    else:
        year, month, day = (
            rows[c].to_numpy(np.float64, na_value=np.nan) for c in ("year", "month", "day")
        )
        known = np.isfinite(year) & np.isfinite(month) & np.isfinite(day)
        rules = [
            row_rule(
                "day",
                "invalid_date",
                "not a real calendar date",
                known & impossible_dates(year, month, day),
                lambda i: f"{year[i]:g}-{month[i]:02g} has no day {day[i]:g}",
            )
        ]
    return [*rules, _time_hour_rule(rows)]


def _rule_failures(
    table: str, rows: pd.DataFrame, groups: dict[str, dict[str, int]], examples: int
) -> list[Failure]:
    """Run the rules beside the suite, count them in their groups, and the failures."""
    failures = []
    for rule in consistency_rules(table, rows):
        name, group = RULE_NAMES[rule.kind]
        tally = groups.setdefault(group, {"checks": 0, "failed": 0})
        tally["checks"] += 1
        if rule.ok:
            continue
        tally["failed"] += 1
        counts = rows["batch"].iloc[rule.positions].value_counts().sort_index()
        if rule.kind in {"out_of_range", "invalid_pattern"}:  # the values say it all
            quoted = pd.unique(rows[rule.column].iloc[rule.positions].to_numpy(dtype=object))
            shown = [_json_value(shorten(v)) for v in quoted[:examples]]
        else:
            shown = list(
                dict.fromkeys(rule.message(int(i)) for i in rule.positions[: examples * 20])
            )[:examples]
        share = 100 * len(rule.positions) / len(rows)
        failures.append(
            Failure(
                table,
                group,
                name,
                rule.column,
                {str(b): int(n) for b, n in counts.items()},
                f"{len(rule.positions):,} rows ({share:.2g}%) {rule.problem}",
                shown,
            )
        )
    return failures


def _json_value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def validate(
    tables: dict[str, list[BatchFile]],
    suites: dict[str, Any],
    parameters: dict[str, dict[str, Any]],
    params: ValidateParams,
) -> Outcome:
    """Validate each table: every batch on its own, then the sound batches together."""
    run = new_batch_validator()
    outcome = Outcome([], {}, {}, {}, {}, [])
    for table, batches in tables.items():
        batch_suite, rows_suite = (
            by_scope(suites[table], "batch"),
            by_scope(suites[table], "rows"),
        )
        groups = outcome.groups.setdefault(table, {})
        outcome.batches[table] = [b.name for b in batches]
        sound: dict[str, pd.DataFrame] = {}
        skipped: list[str] = []
        for b in batches:
            if b.frame is None:
                outcome.failures.append(
                    Failure(table, "readable", "file is readable", None, {b.name: 0}, str(b.error))
                )
                groups.setdefault("readable", {"checks": 0, "failed": 0})["failed"] += 1
                skipped.append(b.name)
                continue
            year, month = (int(p) for p in b.name.split("-"))
            batch_params = {**parameters.get(table, {}), "file_year": [year], "file_month": [month]}
            result = run(b.frame, batch_suite, batch_params)
            outcome.results.append((f"{table}-{b.name}", result))
            count_checks(groups, result)
            failures = batch_failures(table, b.name, result, params.failure_examples)
            # A missing column is reported once, by the schema check, not again by every
            # expectation on that column.
            failures = [f for f in failures if f.group == "schema" or f.column in b.frame]
            outcome.failures += failures
            if any(f.group in STRUCTURAL_GROUPS for f in failures):
                skipped.append(b.name)
            else:
                sound[b.name] = b.frame
        groups.setdefault("readable", {"checks": 0, "failed": 0})["checks"] += len(batches)
        outcome.skipped[table] = skipped
        if not sound:
            outcome.rows[table] = 0
            continue
        rows = pd.concat(sound, names=["batch", None]).reset_index(level="batch")
        outcome.rows[table] = len(rows)
        result = run(rows, rows_suite, parameters.get(table, {}))
        outcome.results.append((f"{table}-rows", result))
        count_checks(groups, result)
        outcome.failures += failures_per_batch(
            table, result, sound, rows, parameters.get(table, {}), run, params.failure_examples
        )
        outcome.failures += _rule_failures(table, rows, groups, params.failure_examples)
    gaps = completeness(outcome.batches)
    outcome.failures += gaps
    for table in outcome.batches:
        tally = outcome.groups[table].setdefault("completeness", {"checks": 0, "failed": 0})
        tally["checks"] += 1
        tally["failed"] += sum(f.table == table for f in gaps)
    return outcome


def format_summary(outcome: Outcome, elapsed: float | None = None) -> str:
    """The short human-readable summary the stage prints."""
    checks = sum(g["checks"] for t in outcome.groups.values() for g in t.values())
    batches = sum(len(v) for v in outcome.batches.values())
    took = f" in {elapsed:.2f} s" if elapsed is not None else ""
    rows = ", ".join(f"{t}: {n:,} rows" for t, n in outcome.rows.items())
    if outcome.success:
        return f"validation passed: {checks} checks on {batches} batches ({rows}){took}"
    lines = [
        f"validation FAILED: {len(outcome.failures)} failed of {checks} checks on {batches} "
        f"batches ({rows}){took}"
    ]
    lines += [f"  x {f.line()}" for f in outcome.failures]
    for table, names in outcome.skipped.items():
        if names:
            lines.append(
                f"  ({table} {', '.join(names)} left out of the row checks: fix the above)"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- I/O edges


def read_table(directory: Path, table: str) -> list[BatchFile]:
    """Read every monthly file of a table; an unreadable file becomes a BatchFile with an error."""
    batches = []
    for path in batch_files(directory):
        try:
            batches.append(BatchFile(table, path.stem, frame=read_csv(path)))
        except DataFileError as exc:
            batches.append(BatchFile(table, path.stem, error=str(exc)))
    return batches


def suite_parameters(p: Params) -> dict[str, dict[str, Any]]:
    """Values the suites refer to as ``$PARAMETER``: allowed carriers and destinations."""
    airlines, airports = read_csv(p.paths.airlines), read_csv(p.paths.airports)
    for frame, path, column in (
        (airlines, p.paths.airlines, "carrier"),
        (airports, p.paths.airports, "faa"),
    ):
        if column not in frame:
            raise DataFileError(f"{path}: has no {column!r} column")
    destinations = sorted({*airports["faa"].dropna(), *p.validate_.extra_destinations})
    return {
        "flights": {"carriers": sorted(airlines["carrier"].dropna()), "destinations": destinations}
    }


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # never phone home from a pipeline
    return stage_main("validate", __doc__, argv, run, (SuiteError, DataFileError))


def run(p: Params, args: argparse.Namespace) -> int:
    out = p.paths.validation
    suites = {t: load_suite(p.paths.expectations / f"{t}.json") for t in TABLES}
    tables = {
        "flights": read_table(p.paths.flights, "flights"),
        "weather": read_table(p.paths.weather, "weather"),
    }
    parameters = suite_parameters(p)
    started = time.perf_counter()
    outcome = validate(tables, suites, parameters, p.validate_)
    elapsed = time.perf_counter() - started
    drop_load_times(outcome.results)
    ValidationSummary.parse(outcome.summary(), p.paths.validation_summary).write(
        p.paths.validation_summary
    )
    write_json(p.paths.validation_result, {name: r.to_json_dict() for name, r in outcome.results})
    docs = write_data_docs(out / "data_docs", outcome.results, outcome.failures)
    print(format_summary(outcome, elapsed), file=sys.stdout if outcome.success else sys.stderr)
    if not outcome.success:
        print(f"full result: {p.paths.validation_result}; Data Docs: {docs}", file=sys.stderr)
    return 0 if outcome.success else 1

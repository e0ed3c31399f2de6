"""The Great Expectations edge of stage ``validate``, the only module that touches GX: it loads the
suites, runs them on frames, and turns GX's results into :class:`Failure` s and Data Docs pages.

Offending values in a result are cut to :data:`flightdelay.core.schemas.shorten`'s length as soon
as GX returns it, so result.json, the Data Docs, stderr and summary.json never echo a huge field.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from flightdelay.core.schemas import shorten


class SuiteError(ValueError):
    """An expectation suite file is missing or not a valid GX suite."""


@dataclass(frozen=True)
class Failure:
    """One failed check: where (table, batches and their offending rows), what, and a few values."""

    table: str
    group: str
    expectation: str
    column: str | None
    batches: dict[str, int]  # batch -> offending rows (0 when the check is about the table)
    detail: str
    examples: list[Any] = field(default_factory=list)

    def line(self) -> str:
        where = ", ".join(f"{b} ({n:,} rows)" if n else b for b, n in self.batches.items())
        column = f" column={self.column}" if self.column else ""
        examples = f" e.g. {self.examples}" if self.examples else ""
        head = f"[{self.group}] {self.table} {self.expectation}{column}"
        return f"{head} in {where}: {self.detail}{examples}"


# ---------------------------------------------------------------- suites


def load_suite(path: Path) -> Any:
    """Read a GX ExpectationSuite from its JSON file."""
    import great_expectations as gx

    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"{path}: expectation suite not found") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: expectation suite is not valid JSON: {exc}") from None
    try:
        suite = gx.ExpectationSuite(**raw)
    except Exception as exc:  # GX raises several types for a bad suite; all mean the same here
        raise SuiteError(f"{path}: not a valid Great Expectations suite: {exc}") from None
    # GX logs and drops an expectation it cannot build instead of raising: count them back.
    given = raw.get("expectations") or []
    if len(suite.expectations) != len(given):
        known = {e.expectation_type for e in suite.expectations}
        lost = sorted({str(e.get("type")) for e in given} - known)
        raise SuiteError(f"{path}: not a valid Great Expectations suite: cannot build {lost}")
    scopes = {(e.meta or {}).get("scope") for e in suite.expectations}
    if not scopes <= {"batch", "rows"}:
        raise SuiteError(f"{path}: every expectation needs meta.scope 'batch' or 'rows'")
    return suite


def by_scope(suite: Any, scope: str) -> Any:
    """The expectations of ``suite`` whose ``meta.scope`` is ``scope``, as a suite of their own."""
    import great_expectations as gx

    kept = [e for e in suite.expectations if e.meta["scope"] == scope]
    return gx.ExpectationSuite(name=f"{suite.name}.{scope}", expectations=kept)


# ---------------------------------------------------------------- runs and results


def new_batch_validator() -> Any:
    """``run(frame, suite, parameters)``: a GX validation result for one frame, values cut."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("raw").add_dataframe_asset("batch")
    definition = asset.add_batch_definition_whole_dataframe("whole")

    def run(frame: pd.DataFrame, suite: Any, parameters: dict[str, Any]) -> Any:
        batch = definition.get_batch(batch_parameters={"dataframe": frame})
        return _shorten_results(
            batch.validate(
                suite,
                expectation_parameters=parameters,
                # BASIC: counts and a few values. GX's richer formats build per-row index lists
                # in Python and take seconds when a whole batch is wrong.
                result_format={"result_format": "BASIC"},
            )
        )

    return run


def _shortened(value: Any) -> Any:
    """``value`` with every long string in it cut (see :func:`flightdelay.core.schemas.shorten`)."""
    if isinstance(value, str):
        return shorten(value)
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_shortened(v) for v in value)
    return value


def _shorten_results(validation: Any) -> Any:
    """Cut long offending values in a GX result in place: a 50 MB field is not echoed to
    result.json and the Data Docs (nor, through the examples, to stderr and summary.json)."""
    for res in validation.results:
        if res.result:
            res.result = _shortened(dict(res.result))
    return validation


def _examples(result: dict[str, Any], limit: int) -> list[Any]:
    values = result.get("partial_unexpected_list") or result.get("unexpected_list") or []
    unique: list[Any] = []
    for value in values:
        value = None if isinstance(value, float) and value != value else shorten(value)  # NaN
        if value not in unique:
            unique.append(value)
        if len(unique) == limit:
            break
    return unique


def _detail(kind: str, kwargs: dict[str, Any], result: dict[str, Any], rows: int) -> str:
    observed = result.get("observed_value")
    if kind == "expect_table_columns_to_match_ordered_list":
        expected, got = list(kwargs["column_list"]), list(observed or [])
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        parts = [f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else ""]
        return "; ".join(p for p in parts if p) or f"columns out of order: {got}"
    if kind == "expect_table_row_count_to_be_between":
        return f"{observed:,} rows, expected {kwargs['min_value']:,}..{kwargs['max_value']:,}"
    if kind == "expect_column_values_to_be_of_type":
        return f"type {observed}, expected {kwargs['type_']}"
    if observed is None and not rows:
        return "could not be evaluated"
    bounds = ""
    if "min_value" in kwargs:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        bounds = (
            f" outside {'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
        )
    elif "value_set" in kwargs:
        bounds = " not in the allowed set"
    percent = result.get("unexpected_percent")
    share = f" ({percent:.2g}%)" if isinstance(percent, float) else ""
    return f"{rows:,} rows{share}{bounds}"


def _shared_keys(rows: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    """Rows per batch whose key also occurs in another batch (a cross-batch duplicate)."""
    shared = rows[rows.duplicated(columns, keep=False)]
    return {str(b): int(n) for b, n in shared["batch"].value_counts().sort_index().items()}


def _failure(table: str, batch: str | None, res: Any, examples: int) -> Failure:
    """One failed GX expectation result as a Failure (batch None: not yet attributed)."""
    config = res.expectation_config
    kwargs = dict(config.kwargs)
    result = dict(res.result or {})
    column = kwargs.get("column") or (
        "+".join(kwargs["column_list"])
        if "column_list" in kwargs and "table" not in config.type
        else None
    )
    rows = int(result.get("unexpected_count") or 0)
    if res.exception_info and res.exception_info.get("raised_exception"):
        message = str(res.exception_info.get("exception_message", "")).splitlines()[0]
        detail = f"could not be evaluated: {shorten(message, 200)}"
    else:
        detail = _detail(config.type, kwargs, result, rows)
    return Failure(
        table=table,
        group=(config.meta or {}).get("group", "other"),
        expectation=config.type,
        column=column,
        batches={batch: rows} if batch is not None else {},
        detail=detail,
        examples=_examples(result, examples),
    )


def batch_failures(table: str, batch: str, validation: Any, examples: int) -> list[Failure]:
    """The failed expectations of one batch's GX run."""
    return [_failure(table, batch, r, examples) for r in validation.results if not r.success]


def failures_per_batch(
    table: str,
    result: Any,
    sound: dict[str, pd.DataFrame],
    rows: pd.DataFrame,
    parameters: dict[str, Any],
    run: Any,
    examples: int,
) -> list[Failure]:
    """Split each failure of the all-rows run into the batches it concerns.

    The failed expectation alone is run again on each batch. A failure that no single batch
    shows is a key shared across batches: those rows are counted in every batch holding one.
    """
    import great_expectations as gx

    failures = []
    for res in result.results:
        if res.success:
            continue
        failed = _failure(table, None, res, examples)
        again = gx.ExpectationSuite(
            name=f"{table}.recheck", expectations=[res.expectation_config.to_domain_obj()]
        )
        batches = {}
        for name, frame in sound.items():
            rerun = run(frame, again, parameters).results[0]
            if not rerun.success:
                batches[name] = int((rerun.result or {}).get("unexpected_count") or 0)
        if not batches and "column_list" in res.expectation_config.kwargs:
            batches = _shared_keys(rows, list(res.expectation_config.kwargs["column_list"]))
        total = int((res.result or {}).get("unexpected_count") or 0)
        failures.append(replace(failed, batches=batches or {"(all batches)": total}))
    return failures


def count_checks(groups: dict[str, dict[str, int]], validation: Any) -> None:
    """Add a GX run's expectations to ``groups`` (group -> checks, failed), in place."""
    for res in validation.results:
        group = groups.setdefault(
            (res.expectation_config.meta or {}).get("group", "other"), {"checks": 0, "failed": 0}
        )
        group["checks"] += 1
        group["failed"] += 0 if res.success else 1


# ---------------------------------------------------------------- Data Docs


# What GX writes that is not a function of the data: the wall clock at which it loaded a batch
# (``meta.batch_markers.ge_load_time``), the render time on the logo's URL and a uuid4 per
# collapsible block. Left in, no two runs would hash alike and a fresh clone could never rebuild
# the outputs dvc.lock records (flightdelay.loop.repro).
_RENDER_TIME = re.compile(r"\?d=\d{8}T\d{6}\.\d+Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def drop_load_times(results: list[tuple[str, Any]]) -> None:
    """Remove GX's ``ge_load_time`` batch marker (wall clock) from every result, in place."""
    for _, result in results:
        markers = (result.meta or {}).get("batch_markers")
        if isinstance(markers, dict):
            markers.pop("ge_load_time", None)


def reproducible_page(page: str) -> str:
    """A Data Docs page without its render time, its uuid4s renumbered in order of appearance."""
    ids: dict[str, str] = {}
    page = _RENDER_TIME.sub("", page)
    return _UUID.sub(lambda m: ids.setdefault(m.group(0), f"block-{len(ids) + 1}"), page)


def write_data_docs(
    directory: Path, results: list[tuple[str, Any]], failures: list[Failure]
) -> Path:
    """Render each GX validation result as a Data Docs page, plus an index linking them."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    directory.mkdir(parents=True, exist_ok=True)
    renderer, view = ValidationResultsPageRenderer(), DefaultJinjaPageView()
    items = []
    for name, result in results:
        page = view.render(renderer.render(result))
        (directory / f"{name}.html").write_text(reproducible_page(page))
        mark = "passed" if result.success else "FAILED"
        items.append(f'<li><a href="{name}.html">{html.escape(name)}</a>: {mark}</li>')
    listed = "".join(f"<li>{html.escape(f.line())}</li>" for f in failures)
    index = directory / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>Data Docs: flight-delay validation</title>"
        f"<h1>Data validation {'FAILED' if failures else 'passed'}</h1>"
        + (f"<h2>Failures</h2><ul>{listed}</ul>" if listed else "")
        + f"<h2>Validation results</h2><ul>{''.join(items)}</ul>"
    )
    return index

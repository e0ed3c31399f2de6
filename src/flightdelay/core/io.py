"""File I/O at the edge: reading the raw monthly batches and writing JSON artifacts.

Every reader turns an unreadable file into a :class:`DataFileError` that names the file and the
problem (empty, truncated, not CSV), so no stage ever shows a pandas stack trace for bad data.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

import pandas as pd

MONTH_FILE = re.compile(r"^(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])\.csv$")
NA_VALUES = ["NA", ""]


class DataFileError(ValueError):
    """A data file is missing, empty, truncated or not parseable."""


def batch_files(directory: Path) -> list[Path]:
    """The monthly batch files (``YYYY-MM.csv``) of a directory, oldest first."""
    if not directory.is_dir():
        raise DataFileError(f"{directory}: data directory not found (run `flightdelay data pull`)")
    files = sorted(p for p in directory.iterdir() if p.suffix == ".csv")
    bad = [p.name for p in files if not MONTH_FILE.match(p.name)]
    if bad:
        raise DataFileError(
            f"{directory}: file name(s) {bad} are not monthly batches (YYYY-MM.csv, MM 01..12)"
        )
    if not files:
        raise DataFileError(f"{directory}: holds no monthly batch (YYYY-MM.csv)")
    return files


def read_csv(path: Path) -> pd.DataFrame:
    """Read one raw CSV, refusing empty and truncated files with a message naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise DataFileError(f"{path}: file is empty")
    if not raw.endswith(b"\n"):
        last = raw.rsplit(b"\n", 1)[-1][:60].decode(errors="replace")
        raise DataFileError(f"{path}: truncated (last line has no newline: {last!r})")
    try:
        # index_col=False: otherwise rows with more fields than the header silently turn their
        # first fields into an index and every column shifts. pandas only warns; make it fatal.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                BytesIO(raw), na_values=NA_VALUES, keep_default_na=False, index_col=False
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: not a readable CSV: {str(exc).strip()}") from None
    except pd.errors.ParserWarning:
        raise DataFileError(
            f"{path}: not a readable CSV: rows have more fields than the header"
        ) from None
    if frame.empty:
        raise DataFileError(f"{path}: has a header but no rows")
    return frame


def read_batches(directory: Path) -> pd.DataFrame:
    """All monthly batches of a directory in one frame, with a ``batch`` column (``YYYY-MM``)."""
    frames = []
    for path in batch_files(directory):
        frame = read_csv(path)
        frame.insert(0, "batch", path.stem)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def md5_file(path: Path) -> str:
    """The MD5 of a file's bytes, as DVC 3 records it for a file."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, payload: Any) -> None:
    """Write JSON deterministically (sorted keys, trailing newline) so DVC hashes are stable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path: Path, what: str = "file") -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataFileError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataFileError(f"{path}: {what} cannot be read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: {what} is not valid JSON: {exc}") from None


def write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

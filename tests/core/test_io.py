"""Edge I/O: every unreadable file becomes a DataFileError that names the file and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flightdelay.core.io import (
    DataFileError,
    batch_files,
    md5_file,
    read_batches,
    read_csv,
    read_json,
    write_json,
)


def _file(tmp_path: Path, content: bytes, name: str = "2013-01.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_read_csv_reads_na_and_empty_fields_as_missing(tmp_path: Path) -> None:
    frame = read_csv(_file(tmp_path, b"a,b\n1,NA\n,x\n"))

    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].isna().tolist() == [False, True]
    assert frame["b"].isna().tolist() == [True, False]


def test_read_csv_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "2013-01.csv"
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}: file not found$"):
        read_csv(path)


def test_read_csv_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(tmp_path))}: cannot be read"):
        read_csv(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \n"])
def test_read_csv_empty_file_names_it(tmp_path: Path, content: bytes) -> None:
    path = _file(tmp_path, content)
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}: file is empty$"):
        read_csv(path)


def test_read_csv_header_only_names_it(tmp_path: Path) -> None:
    path = _file(tmp_path, b"year,month,day\n")
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}: has a header but no rows$"):
        read_csv(path)


def test_read_csv_truncated_names_it_and_shows_the_last_line(tmp_path: Path) -> None:
    path = _file(tmp_path, b"year,month,day\n2013,1,1\n2013,1,")
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}: truncated .*'2013,1,'"):
        read_csv(path)


def test_read_csv_bad_encoding_names_it(tmp_path: Path) -> None:
    path = _file(tmp_path, b"origin,temp\n\xff\xfeEWR,1\n")
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}: not a readable CSV: 'utf-8' codec"
    ):
        read_csv(path)


def test_read_csv_binary_file_names_it(tmp_path: Path) -> None:
    path = _file(tmp_path, bytes(range(256)) + b"\n")
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}: not a readable CSV"):
        read_csv(path)


def test_read_csv_unclosed_quote_names_it(tmp_path: Path) -> None:
    path = _file(tmp_path, b'a,b\n"1,2\n')
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}: not a readable CSV: .*EOF inside string"
    ):
        read_csv(path)


def test_read_csv_row_longer_than_header_names_it(tmp_path: Path) -> None:
    path = _file(tmp_path, b"a,b\n1,2\n3,4,5\n")
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}: not a readable CSV: .*line 3"
    ):
        read_csv(path)


def test_read_csv_every_row_longer_than_header_is_not_shifted_into_an_index(
    tmp_path: Path,
) -> None:
    # Left to pandas' defaults, this reads as a=[2, 5], b=[3, 6] with 1 and 4 as the index.
    path = _file(tmp_path, b"a,b\n1,2,3\n4,5,6\n")
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}: .*more fields than the header"
    ):
        read_csv(path)


def test_batch_files_lists_monthly_batches_oldest_first(tmp_path: Path) -> None:
    for name in ["2013-10.csv", "2013-02.csv", "notes.txt"]:
        _file(tmp_path, b"a\n1\n", name)

    assert [p.name for p in batch_files(tmp_path)] == ["2013-02.csv", "2013-10.csv"]


@pytest.mark.parametrize("name", ["2013-1.csv", "jan.csv", "2013-13.csv", "2013-00.csv"])
def test_batch_files_wrongly_named_file_names_it(tmp_path: Path, name: str) -> None:
    _file(tmp_path, b"a\n1\n", "2013-01.csv")
    _file(tmp_path, b"a\n1\n", name)
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(tmp_path))}: file name\(s\) \['{name}'\] are not"
    ):
        batch_files(tmp_path)


def test_batch_files_missing_directory_says_how_to_get_it(tmp_path: Path) -> None:
    missing = tmp_path / "flights"
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(missing))}: .*flightdelay data pull"
    ):
        batch_files(missing)


def test_batch_files_empty_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(tmp_path))}: holds no monthly batch"
    ):
        batch_files(tmp_path)


def test_read_batches_tags_rows_with_their_batch(tmp_path: Path) -> None:
    _file(tmp_path, b"x\n1\n2\n", "2013-01.csv")
    _file(tmp_path, b"x\n3\n", "2013-02.csv")

    frame = read_batches(tmp_path)

    assert frame["batch"].tolist() == ["2013-01", "2013-01", "2013-02"]
    assert frame["x"].tolist() == [1, 2, 3]


def test_read_batches_bad_batch_names_the_file(tmp_path: Path) -> None:
    _file(tmp_path, b"x\n1\n", "2013-01.csv")
    bad = _file(tmp_path, b"x\n", "2013-02.csv")
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(bad))}: has a header but no rows$"):
        read_batches(tmp_path)


def test_md5_file_is_the_md5_of_the_bytes(tmp_path: Path) -> None:
    assert md5_file(_file(tmp_path, b"")) == "d41d8cd98f00b204e9800998ecf8427e"
    assert md5_file(_file(tmp_path, b"abc")) == "900150983cd24fb0d6963f7d28e17f72"


def test_write_json_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.json"
    write_json(path, {"b": 1, "a": tmp_path})

    assert path.read_text() == f'{{\n  "a": "{tmp_path}",\n  "b": 1\n}}\n'
    assert read_json(path) == {"a": str(tmp_path), "b": 1}


def test_read_json_missing_file_names_it_and_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}: model card not found$"):
        read_json(path, "model card")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe"])
def test_read_json_invalid_names_it(tmp_path: Path, content: bytes) -> None:
    path = _file(tmp_path, content, "metrics.json")
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}: file is not valid JSON"):
        read_json(path)

"""The one reader of user tables (CSV, TSV, JSONL, Parquet, optionally gzipped) for every task.

`read_table` turns a file into a pandas DataFrame; the format comes from the file's suffix
(`table_format`). `iter_column` streams one column of a table in chunks of rows, never
holding the file in memory, for the readers of files larger than memory (texts to
predict, `lstmkit.data.text_stream`; pretraining corpora, `lstmkit.data.corpus`); both
share the formats, the parsing and the error messages. Every problem a user can fix is
one `LstmkitError` line: a missing file, a folder, an unknown suffix, an empty file, a
file the parser cannot read, bytes that are not UTF-8 (naming the data rows that hold
them) and JSONL lines that are not JSON objects.

Rows are numbered from 1 over the data rows (a CSV header is not counted, blank lines are
skipped; a JSONL file's rows are its non-blank lines), the numbering the callers use in
their own messages. ``as_text=True`` reads every CSV/TSV cell as the exact text in the
file (no number, date or "NA" inference; a cell missing from a short row is "") and
decodes Parquet byte columns, for tasks whose columns are texts; typed formats (JSONL,
Parquet) keep their types.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from lstmkit.errors import LstmkitError

__all__ = [
    "READ_ERRORS",
    "STREAM_SUFFIXES",
    "SUFFIXES",
    "ByteSource",
    "ColumnChunk",
    "iter_column",
    "missing_column",
    "read_table",
    "rows_text",
    "stream_format",
    "table_format",
    "unreadable",
]

#: File suffix -> format. A trailing ``.gz`` (``d.csv.gz``) is read through gzip.
SUFFIXES = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip

#: The suffixes the streaming readers read as tables: any other file (a ``.txt`` too, which
#: `read_table` reads as CSV) streams as one text a line.
STREAM_SUFFIXES = {k: v for k, v in SUFFIXES.items() if k != ".txt"}

_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSONL", "parquet": "Parquet"}
#: what reading a damaged gzip file raises (zlib.error is not an OSError)
READ_ERRORS = (OSError, EOFError, zlib.error)
#: example of a JSONL line, for messages
_JSONL_EXAMPLE = '{"text": "...", "label": "pos"}'


def rows_text(indices: Sequence[int], limit: int = 5, verb: str | None = None) -> str:
    """'rows 3, 7, 9' for 0-based ``indices`` (shown 1-based), shortened after ``limit``;
    with ``verb`` (its plural, e.g. "have") followed by it in the right number: 'row 3
    has', 'rows 3, 7 have'."""
    shown = ", ".join(str(i + 1) for i in indices[:limit])
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    text = f"row{'s' if len(indices) > 1 else ''} {shown}{more}"
    if verb is None:
        return text
    return f"{text} {verb if len(indices) > 1 else _singular(verb)}"


def _singular(verb: str) -> str:
    """The third person singular of a plural verb: have -> has, are -> is, contain -> contains."""
    return {"have": "has", "are": "is"}.get(verb, f"{verb}s")


def _is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def table_format(path: str | os.PathLike[str]) -> str:
    """The format of ``path`` from its suffix (a ``.gz`` after it is looked through):
    ``"csv"`` (.csv, .txt), ``"tsv"``, ``"jsonl"`` (.jsonl, .ndjson) or ``"parquet"``
    (.parquet, .pq). Raises `LstmkitError` for any other suffix."""
    path = Path(path)
    suffix = Path(path.stem).suffix if _is_gzip(path) else path.suffix
    fmt = SUFFIXES.get(suffix.lower())
    if fmt is None or (fmt == "parquet" and _is_gzip(path)):
        got = "".join(path.suffixes[-2:]) if _is_gzip(path) else path.suffix
        raise LstmkitError(
            f"{path}: unknown file type {got or '(no suffix)'!r}; expected a CSV, TSV, JSONL "
            f"or Parquet file (.csv, .txt, .tsv, .jsonl, .ndjson, .parquet, .pq; the text "
            f"formats may be gzipped, e.g. .csv.gz)"
        )
    return fmt


def _raw_bytes(path: Path) -> bytes:
    with ByteSource(path) as source:
        return source.stream.read()


def _has_bad_bytes(value: object) -> bool:
    """True when ``value`` (text, or a list of texts) holds a byte that was not UTF-8."""
    if isinstance(value, str):
        return any("\udc80" <= ch <= "\udcff" for ch in value)
    if isinstance(value, list | tuple):
        return any(_has_bad_bytes(v) for v in value)
    return False


def _bad_utf8(path: Path, text: str, split_rows: Callable[[str], list]) -> LstmkitError:
    """The error naming the data rows of ``text`` (decoded with surrogateescape) that hold
    bytes that are not UTF-8 ("the header" when only the header does)."""
    bad = [i for i, row in enumerate(split_rows(text)) if _has_bad_bytes(row)]
    where = rows_text(bad, verb="contain") if bad else "the header contains"
    fix = "those rows" if len(bad) > 1 else "that row" if bad else "the header"
    return LstmkitError(
        f"{path}: {where} bytes that are not valid UTF-8; re-save the file "
        f"as UTF-8 (e.g. iconv -f latin1 -t utf-8) or fix {fix}"
    )


def _csv_data_rows(text: str, delimiter: str) -> list[list[str]]:
    """The non-blank data rows of CSV ``text`` (header dropped), with Python's csv module;
    used only to locate bad bytes, so its field-size limit is lifted for long texts."""
    before = csv.field_size_limit(2**31 - 1)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    finally:
        csv.field_size_limit(before)
    return [r for r in rows[1:] if r]


def _jsonl_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


_FIELDS = re.compile(r"Expected \d+ fields in line \d+, saw \d+")


def _too_many_fields(path: Path, sep: str) -> LstmkitError:
    """The error naming the data rows with more fields than the header (pandas names a
    record count that is neither a file line nor a data row, so the rows are found again)."""
    rows = list(
        csv.reader(io.StringIO(_raw_bytes(path).decode("utf-8-sig", "replace")), delimiter=sep)
    )
    header = len(rows[0]) if rows else 0
    long = [i for i, row in enumerate(r for r in rows[1:] if r) if len(row) > header]
    name = "a tab" if sep == "\t" else "a comma"
    return LstmkitError(
        f"{path}: {rows_text(long, verb='have') if long else 'a row has'} more fields than "
        f"the header ({header}); put cells that hold {name} in double quotes, or remove the "
        "extra fields"
    )


#: pandas' options that read every CSV cell as the exact text in the file
_CSV_AS_TEXT = {"dtype": object, "keep_default_na": False, "index_col": False}


def _read_csv(path: Path, fmt: str, as_text: bool) -> pd.DataFrame:
    sep = "\t" if fmt == "tsv" else ","
    kw: dict = dict(_CSV_AS_TEXT) if as_text else {}
    try:
        with warnings.catch_warnings():
            if as_text:  # pandas only warns (and drops cells) when data row 1 is too long
                warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, sep=sep, encoding="utf-8", **kw)
    except UnicodeDecodeError:
        text = _raw_bytes(path).decode("utf-8", errors="surrogateescape")
        raise _bad_utf8(path, text, lambda t: _csv_data_rows(t, sep)) from None
    except pd.errors.ParserWarning:
        raise _too_many_fields(path, sep) from None
    except pd.errors.ParserError as err:
        if _FIELDS.search(str(err)) is None:
            raise
        raise _too_many_fields(path, sep) from None


def _jsonl_record(line: str, index: int, path: Path) -> dict:
    """The JSON object on data row ``index`` (0-based) of a JSONL file; anything else is
    one `LstmkitError` line naming the row."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise LstmkitError(
            f"{path}: row {index + 1} is not valid JSON ({err.msg}); each line must be one "
            f"JSON object such as {_JSONL_EXAMPLE}"
        ) from None
    if not isinstance(record, dict):
        raise LstmkitError(
            f"{path}: row {index + 1} is a JSON {type(record).__name__}, expected an object "
            f"such as {_JSONL_EXAMPLE}"
        )
    return record


def _read_jsonl(path: Path, as_text: bool) -> pd.DataFrame:
    raw = _raw_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad_utf8(path, raw.decode("utf-8", "surrogateescape"), _jsonl_rows) from None
    records = [_jsonl_record(line, i, path) for i, line in enumerate(_jsonl_rows(text))]
    if not records:
        raise LstmkitError(f"{path}: the file is empty; expected one JSON object per line")
    columns: list[str] = []
    for record in records:
        columns.extend(k for k in record if k not in columns)
    # One list per column keeps JSON's own values (ints stay ints); absent keys are None.
    df = pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns})
    return df if as_text else df.infer_objects()


def _decoded(values: list[Any], path: Path, name: str, first: int = 0) -> list[Any]:
    """``values`` of column ``name`` with Parquet byte strings decoded as UTF-8; the data
    rows (numbered from ``first`` + 1) that are not UTF-8 are one `LstmkitError` line."""
    out, bad = [], []
    for i, v in enumerate(values):
        try:
            out.append(v.decode("utf-8") if isinstance(v, bytes) else v)
        except UnicodeDecodeError:
            bad.append(first + i)
    if bad:
        raise LstmkitError(
            f"{path}: {rows_text(bad)} of column {name!r} "
            f"{'contain' if len(bad) > 1 else 'contains'} bytes that are not valid UTF-8; "
            f"fix {'those rows' if len(bad) > 1 else 'that row'}"
        )
    return out


def _decode_bytes_column(df: pd.DataFrame, name: str, path: Path) -> None:
    """Decode a Parquet binary column in place, naming the rows that are not UTF-8."""
    df[name] = pd.Series(_decoded(df[name].tolist(), path, name), index=df.index, dtype=object)


def _read_parquet(path: Path, as_text: bool) -> pd.DataFrame:
    import pyarrow as pa

    df = pd.read_parquet(path)
    # pyarrow's allocator keeps what the conversion freed: 700 MB after a table of 20
    # million rows (100,000 series), held to the end of the process unless given back
    pa.default_memory_pool().release_unused()
    if as_text:
        for name in df.columns:
            if df[name].dtype == object and any(isinstance(v, bytes) for v in df[name]):
                _decode_bytes_column(df, name, path)
    return df


def read_table(path: str | os.PathLike[str], *, as_text: bool = False) -> pd.DataFrame:
    """Read a table file into a DataFrame of n data rows, one column per field.

    Args:
        path: a CSV (.csv, .txt), TSV, JSONL (.jsonl, .ndjson) or Parquet (.parquet, .pq)
            file; the CSV, TSV and JSONL formats may be gzipped (``.csv.gz``).
        as_text: read every CSV/TSV cell as its exact text (object dtype, no type or
            missing-value inference; a cell missing from a short row is "") and decode
            Parquet byte columns as UTF-8. Without it pandas infers the column types.

    Returns:
        The table (n rows x columns, in the file's column order). JSONL columns are the
        union of the objects' keys in order of appearance; an absent key is None.

    Raises:
        LstmkitError: one line for a missing file, a folder, an unknown suffix, an empty
            file, an unreadable file, bytes that are not UTF-8 (with their rows) or a JSONL
            line that is not a JSON object (with its row).
    """
    path = Path(path)
    if not path.exists():
        raise LstmkitError(f"data file {path} does not exist; pass a CSV or Parquet file")
    if path.is_dir():
        raise LstmkitError(f"{path} is a folder; pass a CSV or Parquet file")
    fmt = table_format(path)
    try:
        if fmt == "jsonl":
            return _read_jsonl(path, as_text)
        if fmt == "parquet":
            return _read_parquet(path, as_text)
        return _read_csv(path, fmt, as_text)
    except LstmkitError:
        raise
    except pd.errors.EmptyDataError:
        raise LstmkitError(
            f"{path}: the file is empty; expected a header row and data rows"
        ) from None
    except Exception as err:  # parser errors come in many types (pandas, pyarrow, gzip, OS)
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LstmkitError(
            f"cannot read {path} as {_NAMES[fmt]}{' (gzipped)' if _is_gzip(path) else ''}: "
            f"{msg}; check that it is a valid {_NAMES[fmt]} file"
        ) from None


# ---------------------------------------------------------------------- streaming
def stream_format(path: str | os.PathLike[str]) -> str | None:
    """The table format a streaming reader reads ``path`` in ("csv", "tsv", "jsonl" or
    "parquet", a ``.gz`` after the suffix looked through; see `STREAM_SUFFIXES`), or None
    for a file read as one text a line. A gzipped Parquet file is refused."""
    path = Path(path)
    name = path.name.lower()
    for suffix, fmt in STREAM_SUFFIXES.items():
        if name.removesuffix(".gz").endswith(suffix):
            if fmt == "parquet" and name.endswith(".gz"):
                raise LstmkitError(f"{path}: a gzipped Parquet file cannot be read; unzip it")
            return fmt
    return None


def missing_column(
    path: str | os.PathLike[str],
    name: str,
    columns: Sequence[str],
    role: str = "text",
    option: str = "--text-column",
) -> LstmkitError:
    """The error for a table without the ``role`` column ``name`` (naming its columns
    and the command-line ``option`` that picks another)."""
    return LstmkitError(
        f"{path}: no {role} column {name!r}; the file has columns {list(columns)}; pass the "
        f"right name with {option}"
    )


def unreadable(path: Path, err: BaseException) -> LstmkitError:
    """The error for a file whose bytes cannot be read (a damaged gzip file, an OS error)."""
    if _is_gzip(path) and not isinstance(err, FileNotFoundError | PermissionError):
        return LstmkitError(
            f"{path}: not a readable gzip file ({err}); it is damaged or not gzip "
            "(check it with gzip -t)"
        )
    return LstmkitError(f"{path}: cannot be read ({err})")


class ByteSource:
    """A file opened for reading bytes, through gzip when its name ends in ``.gz``, with
    ``position``: how far into the file on disk the reading is (for progress). A context
    manager; `close` closes both."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.raw = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self.stream: IO[bytes] = (
            gzip.GzipFile(fileobj=self.raw) if _is_gzip(self.path) else self.raw
        )

    @property
    def position(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.stream.close()
        self.raw.close()

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ColumnChunk:
    """The values of one column in consecutive data rows of a table: ``first_row`` is the
    0-based data row of the first value, ``position`` how far into the file the reader is
    (bytes of the file on disk; rows for Parquet)."""

    values: list[Any]
    first_row: int
    position: int


def iter_column(
    path: str | os.PathLike[str],
    column: str,
    chunk_rows: int = 4096,
    *,
    role: str = "text",
    option: str = "--text-column",
) -> Iterator[ColumnChunk]:
    """The values of ``column`` in every data row of a table file, ``chunk_rows`` rows at a
    time; only one chunk is in memory (a cell or JSONL line is read whole).

    Args:
        path: a CSV/TSV/JSONL file (optionally ``.gz``) or a Parquet file (`stream_format`).
        column: the column to read; ``role`` and ``option`` name it in the error for a
            file without it.
        chunk_rows: data rows per chunk (the last may be shorter).

    Values are as `read_table` with ``as_text=True`` reads them: CSV/TSV cells as their
    exact text ("" for a cell missing from a short row), JSON values as they are,
    Parquet byte strings decoded. Rows are numbered as there (data rows from 1). Every
    problem is one `LstmkitError` line: a missing column (a JSONL record without it
    names its row), an unreadable or damaged (gzip) file, bytes that are not UTF-8, a
    line that is not a JSON object, a row with more fields than the header.
    """
    path = Path(path)
    fmt = stream_format(path)
    if fmt is None:
        raise LstmkitError(f"{path}: not a table; expected {', '.join(STREAM_SUFFIXES)}")
    if fmt == "parquet":
        return _parquet_column(path, column, chunk_rows, role, option)
    if fmt == "jsonl":
        return _jsonl_column(path, column, chunk_rows, option)
    return _csv_column(path, fmt, column, chunk_rows, role, option)


def _csv_column(
    path: Path, fmt: str, column: str, size: int, role: str, option: str
) -> Iterator[ColumnChunk]:
    """Python's csv module rather than chunked pandas: pandas 2 silently drops the extra
    cells of a too-long row that starts a chunk, and either pandas decodes ahead of the rows
    it returns; reading row by row names the exact row of every problem."""
    sep = "\t" if fmt == "tsv" else ","
    row = 0
    values: list[Any] = []
    first = 0
    before = csv.field_size_limit(2**31 - 1)  # a review may be longer than 128 KiB
    try:
        with ByteSource(path) as source:
            text = io.TextIOWrapper(source.stream, encoding="utf-8-sig", newline="")
            rows = csv.reader(text, delimiter=sep, strict=True)
            try:
                header = [c.strip() for c in next(rows, [])]
                while header == [""] or header == []:  # blank lines before the header
                    if (line := next(rows, None)) is None:
                        raise LstmkitError(
                            f"{path}: the file is empty; expected a header row and data rows"
                        )
                    header = [c.strip() for c in line]
                if column not in header:
                    raise missing_column(path, column, header, role, option)
                at = header.index(column)
                for cells in rows:
                    if not cells:
                        continue  # a blank line, as pandas skips them
                    if len(cells) > len(header):
                        name = "a tab" if sep == "\t" else "a comma"
                        raise LstmkitError(
                            f"{path}: {rows_text([row], verb='have')} more fields than the "
                            f"header ({len(header)}); put cells that hold {name} in double "
                            "quotes, or remove the extra fields"
                        )
                    values.append(cells[at] if at < len(cells) else "")
                    row += 1
                    if len(values) == size:
                        yield ColumnChunk(values, first, source.position)
                        values, first = [], row
                if values:
                    yield ColumnChunk(values, first, source.position)
            except UnicodeDecodeError:
                raise LstmkitError(
                    f"{path}: bytes that are not valid UTF-8 at or after row {row + 1}; "
                    "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                ) from None
            except csv.Error as err:
                raise LstmkitError(f"cannot read {path} after row {row}: {err}") from None
            except READ_ERRORS as err:
                raise unreadable(path, err) from None
    finally:
        csv.field_size_limit(before)


def _jsonl_column(path: Path, column: str, size: int, option: str) -> Iterator[ColumnChunk]:
    values: list[Any] = []
    row = first = position = 0
    with ByteSource(path) as source:
        try:
            for number, raw in enumerate(source.stream):
                position = source.position
                try:
                    line = raw.decode("utf-8-sig" if number == 0 else "utf-8")
                except UnicodeDecodeError:
                    raise LstmkitError(
                        f"{path}: {rows_text([row], verb='contain')} bytes that are not valid "
                        "UTF-8; re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8) or "
                        "fix that row"
                    ) from None
                if not line.strip():
                    continue
                record = _jsonl_record(line, row, path)
                if column not in record:
                    raise LstmkitError(
                        f"{path}: row {row + 1} has no field {column!r} (it has "
                        f"{list(record)}); pass the right name with {option}"
                    )
                values.append(record[column])
                row += 1
                if len(values) == size:
                    yield ColumnChunk(values, first, position)
                    values, first = [], row
        except READ_ERRORS as err:
            raise unreadable(path, err) from None
    if values:
        yield ColumnChunk(values, first, position)


def _parquet_column(
    path: Path, column: str, size: int, role: str, option: str
) -> Iterator[ColumnChunk]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LstmkitError(
            f"cannot read {path} as Parquet: {msg}; check that it is a valid Parquet file"
        ) from None
    names = parquet.schema_arrow.names
    if column not in names:
        raise missing_column(path, column, names, role, option)
    row = 0
    for batch in parquet.iter_batches(batch_size=size, columns=[column]):
        values = _decoded(batch.column(0).to_pylist(), path, column, first=row)
        row += len(values)
        yield ColumnChunk(values, row - len(values), row)

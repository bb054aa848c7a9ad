"""The one reader of user tables (CSV, TSV, JSONL, Parquet, optionally gzipped) for every task.

`read_table` turns a file into a pandas DataFrame; the format comes from the file's suffix
(`table_format`). Every problem a user can fix is one `LstmkitError` line: a missing file,
a folder, an unknown suffix, an empty file, a file the parser cannot read, bytes that are
not UTF-8 (naming the data rows that hold them) and JSONL lines that are not JSON objects.

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
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from lstmkit.errors import LstmkitError

__all__ = ["SUFFIXES", "read_table", "rows_text", "table_format"]

#: File suffix -> format. A trailing ``.gz`` (``d.csv.gz``) is read through gzip.
SUFFIXES = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip

_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSONL", "parquet": "Parquet"}


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
    if _is_gzip(path):
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


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


def _read_csv(path: Path, fmt: str, as_text: bool) -> pd.DataFrame:
    sep = "\t" if fmt == "tsv" else ","
    kw: dict = {"dtype": object, "keep_default_na": False, "index_col": False} if as_text else {}
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


def _read_jsonl(path: Path, as_text: bool) -> pd.DataFrame:
    raw = _raw_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad_utf8(path, raw.decode("utf-8", "surrogateescape"), _jsonl_rows) from None
    records: list[dict] = []
    for i, line in enumerate(_jsonl_rows(text)):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise LstmkitError(
                f"{path}: row {i + 1} is not valid JSON ({err.msg}); each line must be one "
                f'JSON object such as {{"text": "...", "label": "pos"}}'
            ) from None
        if not isinstance(record, dict):
            raise LstmkitError(
                f"{path}: row {i + 1} is a JSON {type(record).__name__}, expected an object "
                f'such as {{"text": "...", "label": "pos"}}'
            )
        records.append(record)
    if not records:
        raise LstmkitError(f"{path}: the file is empty; expected one JSON object per line")
    columns: list[str] = []
    for record in records:
        columns.extend(k for k in record if k not in columns)
    # One list per column keeps JSON's own values (ints stay ints); absent keys are None.
    df = pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns})
    return df if as_text else df.infer_objects()


def _decode_bytes_column(df: pd.DataFrame, name: str, path: Path) -> None:
    """Decode a Parquet binary column in place, naming the rows that are not UTF-8."""
    out, bad = [], []
    for i, v in enumerate(df[name].tolist()):
        try:
            out.append(v.decode("utf-8") if isinstance(v, bytes) else v)
        except UnicodeDecodeError:
            bad.append(i)
    if bad:
        raise LstmkitError(
            f"{path}: {rows_text(bad)} of column {name!r} "
            f"{'contain' if len(bad) > 1 else 'contains'} bytes that are not valid UTF-8; "
            f"fix {'those rows' if len(bad) > 1 else 'that row'}"
        )
    df[name] = pd.Series(out, index=df.index, dtype=object)


def _read_parquet(path: Path, as_text: bool) -> pd.DataFrame:
    df = pd.read_parquet(path)
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

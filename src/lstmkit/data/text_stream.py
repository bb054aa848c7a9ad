"""Texts read from a file in chunks, for prediction on files larger than memory.

`iter_text_chunks` yields `TextChunk`s of at most ``chunk_size`` texts from a CSV / TSV /
JSONL file (optionally gzipped; pandas' chunked reader, or one JSON object a line), a
Parquet file (pyarrow record batches of the text column only) or any other file read as
one text a line (blank lines skipped, as ``classify predict`` reads a ``.txt``). Only one
chunk is in memory at a time. Each chunk says how far into the file it reached (bytes
of the file on disk, or rows for Parquet) for a progress bar: `stream_total` is the
matching total.

The rules are those of the whole-file readers (`lstmkit.data.text`): an empty or
non-text cell, a missing text column, bytes that are not UTF-8 are one `LstmkitError`
line naming the file and the data rows (numbered from 1, as the whole-file readers do).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from lstmkit.data.tables import rows_text
from lstmkit.data.text import check_text_values
from lstmkit.errors import LstmkitError

__all__ = ["TextChunk", "iter_text_chunks", "stream_format", "stream_total"]

_TABLES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_TABLES |= {".parquet": "parquet", ".pq": "parquet"}


@dataclass
class TextChunk:
    """At most ``chunk_size`` texts; ``first_row`` is the 0-based data row of the first;
    ``position`` how far into the file the reader is (see `stream_total`)."""

    texts: list[str]
    first_row: int
    position: int


def stream_format(path: str | Path) -> str:
    """ "csv", "tsv", "jsonl", "parquet" or "lines" (one text a line) for ``path``; a
    ``.json`` file is refused (it is one document, not one text a line)."""
    name = Path(path).name.lower().removesuffix(".gz")
    for suffix, fmt in _TABLES.items():
        if name.endswith(suffix):
            if fmt == "parquet" and Path(path).name.lower().endswith(".gz"):
                raise LstmkitError(f"{path}: a gzipped Parquet file cannot be read; unzip it")
            return fmt
    if name.endswith(".json"):
        raise LstmkitError(
            f"{path}: a .json file is not read as texts; give a .jsonl file (one JSON "
            f'object such as {{"text": "..."}} per line), a table or one text per line'
        )
    return "lines"


def stream_total(path: str | Path) -> int:
    """The end of the scale `TextChunk.position` runs on: the file's size in bytes, or its
    row count for Parquet (from the file's metadata)."""
    path = Path(path)
    if stream_format(path) == "parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise LstmkitError(f"cannot read {path} as Parquet: {err}") from None
    return path.stat().st_size


class _Source:
    """The file on disk, opened (through gzip when its first bytes say so) for reading
    bytes, with the position in the file on disk."""

    def __init__(self, path: Path) -> None:
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        gzipped = self.raw.read(2) == b"\x1f\x8b"
        self.raw.seek(0)
        self.stream: IO[bytes] = gzip.GzipFile(fileobj=self.raw) if gzipped else self.raw

    @property
    def position(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def _check(texts: list[object], first_row: int, path: Path) -> list[str]:
    check_text_values(texts, str(path), unit="row", first=first_row)
    return texts  # type: ignore[return-value]


def _not_utf8(path: Path, first_row: int) -> LstmkitError:
    return LstmkitError(
        f"{path}: bytes that are not valid UTF-8 at or after row {first_row + 1}; re-save the "
        f"file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    )


def _missing_column(path: Path, name: str, columns: list[str]) -> LstmkitError:
    return LstmkitError(
        f"{path}: no text column {name!r}; the file has columns {columns}; pass the right "
        f"name with --text-column"
    )


def _csv_chunks(path: Path, sep: str, column: str, size: int) -> Iterator[TextChunk]:
    source = _Source(path)
    row = 0
    try:
        reader = pd.read_csv(
            source.stream, sep=sep, dtype=object, keep_default_na=False, index_col=False,
            encoding="utf-8", chunksize=size,
        )  # fmt: skip
        with reader:
            for frame in reader:
                frame.columns = [str(c).strip() for c in frame.columns]
                if column not in frame.columns:
                    raise _missing_column(path, column, list(frame.columns))
                texts = _check(frame[column].tolist(), row, path)
                yield TextChunk(texts, row, source.position)
                row += len(texts)
        if row == 0:
            raise LstmkitError(f"{path}: no texts in the file; expected a header row and texts")
    except UnicodeDecodeError:
        raise _not_utf8(path, row) from None
    except pd.errors.EmptyDataError:
        raise LstmkitError(f"{path}: the file is empty; expected a header row and texts") from None
    except pd.errors.ParserError as err:
        first = str(err).strip().splitlines()[0]
        raise LstmkitError(f"cannot read {path} after row {row}: {first}") from None
    finally:
        source.close()


def _lines(path: Path) -> Iterator[tuple[bytes, int]]:
    source = _Source(path)
    try:
        for raw in source.stream:
            yield raw, source.position
    finally:
        source.close()


def _line_chunks(path: Path, fmt: str, column: str, size: int) -> Iterator[TextChunk]:
    texts: list[str] = []
    row = first = 0
    position = 0
    for raw, position in _lines(path):
        try:
            line = raw.decode("utf-8-sig" if row == 0 else "utf-8")
        except UnicodeDecodeError:
            raise LstmkitError(
                f"{path}: {rows_text([row])} contain bytes that are not valid UTF-8; re-save "
                f"the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
            ) from None
        if not line.strip():
            continue
        if fmt == "jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise LstmkitError(
                    f"{path}: row {row + 1} is not valid JSON ({err.msg}); each line must be "
                    f'one JSON object such as {{"text": "..."}}'
                ) from None
            if not isinstance(record, dict):
                raise LstmkitError(
                    f"{path}: row {row + 1} is a JSON {type(record).__name__}, expected an "
                    f'object such as {{"text": "..."}}'
                )
            if column not in record:
                raise _missing_column(path, column, list(record))
            texts.append(_check([record[column]], row, path)[0])
        else:
            texts.append(line.rstrip("\r\n"))
        row += 1
        if len(texts) == size:
            yield TextChunk(texts, first, position)
            texts, first = [], row
    if texts:
        yield TextChunk(texts, first, position)
    elif row == 0:
        raise LstmkitError(f"{path}: no texts in the file; expected one text per line")


def _parquet_chunks(path: Path, column: str, size: int) -> Iterator[TextChunk]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise LstmkitError(f"cannot read {path} as Parquet: {err}") from None
    names = parquet.schema_arrow.names
    if column not in names:
        raise _missing_column(path, column, names)
    row = 0
    for batch in parquet.iter_batches(batch_size=size, columns=[column]):
        values = batch.column(0).to_pylist()
        decoded: list[object] = []
        for i, v in enumerate(values):
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    raise LstmkitError(
                        f"{path}: {rows_text([row + i])} of column {column!r} contain bytes "
                        f"that are not valid UTF-8; fix those rows"
                    ) from None
            decoded.append(v)
        texts = _check(decoded, row, path)
        row += len(texts)
        yield TextChunk(texts, row - len(texts), row)
    if row == 0:
        raise LstmkitError(f"{path}: no texts in the file")


def iter_text_chunks(
    path: str | Path, text_column: str = "text", chunk_size: int = 2000
) -> Iterator[TextChunk]:
    """Texts of ``path`` in chunks of at most ``chunk_size`` (the last may be shorter).

    Args:
        path: a .csv/.tsv/.jsonl/.ndjson (optionally .gz) or .parquet/.pq file, whose
            ``text_column`` holds the texts; any other file is one text per line.
        text_column: the column holding the texts (tables only).
        chunk_size: texts per chunk (>= 1).
    """
    path = Path(path)
    if chunk_size < 1:
        raise LstmkitError(f"chunk size must be at least 1, got {chunk_size}")
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise LstmkitError(f"{path}: {what}; pass a file of texts")
    fmt = stream_format(path)
    if fmt in ("csv", "tsv"):
        return _csv_chunks(path, "\t" if fmt == "tsv" else ",", text_column, chunk_size)
    if fmt == "parquet":
        return _parquet_chunks(path, text_column, chunk_size)
    return _line_chunks(path, fmt, text_column, chunk_size)

"""Texts read from a file in chunks, for prediction on files larger than memory.

`iter_text_chunks` yields `TextChunk`s of at most ``chunk_size`` texts from a CSV / TSV /
JSONL file (optionally gzipped) or a Parquet file, read by the one table reader
(`lstmkit.data.tables.iter_column`, which streams the text column only), or from any
other file read as one text a line (blank lines skipped, as ``classify predict`` reads a
``.txt``). Only one chunk is in memory at a time. Each chunk says how far into the file
it reached (bytes of the file on disk, or rows for Parquet) for a progress bar:
`stream_total` is the matching total.

The rules are those of the whole-file readers (`lstmkit.data.text`): an empty or
non-text cell, a missing text column, bytes that are not UTF-8 are one `LstmkitError`
line naming the file and the data rows (numbered from 1, as the whole-file readers do).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lstmkit.data import tables
from lstmkit.data.tables import ByteSource, iter_column, rows_text
from lstmkit.data.text import check_text_values
from lstmkit.errors import LstmkitError

__all__ = ["TextChunk", "iter_text_chunks", "stream_format", "stream_total"]


@dataclass
class TextChunk:
    """At most ``chunk_size`` texts; ``first_row`` is the 0-based data row of the first;
    ``position`` how far into the file the reader is (see `stream_total`)."""

    texts: list[str]
    first_row: int
    position: int


def stream_format(path: str | Path) -> str:
    """ "csv", "tsv", "jsonl", "parquet" (`lstmkit.data.tables.stream_format`) or "lines"
    (one text a line) for ``path``; a ``.json`` file is refused (it is one document, not
    one text a line)."""
    fmt = tables.stream_format(path)
    if fmt is not None:
        return fmt
    if Path(path).name.lower().removesuffix(".gz").endswith(".json"):
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


def _table_chunks(path: Path, column: str, size: int) -> Iterator[TextChunk]:
    rows = 0
    for chunk in iter_column(path, column, size):
        check_text_values(chunk.values, str(path), unit="row", first=chunk.first_row)
        rows += len(chunk.values)
        yield TextChunk(chunk.values, chunk.first_row, chunk.position)
    if rows == 0:
        raise LstmkitError(f"{path}: no texts in the file; expected a header row and texts")


def _line_chunks(path: Path, size: int) -> Iterator[TextChunk]:
    texts: list[str] = []
    row = first = 0
    position = 0
    with ByteSource(path) as source:
        for raw in source.stream:
            position = source.position
            try:
                line = raw.decode("utf-8-sig" if row == 0 else "utf-8")
            except UnicodeDecodeError:
                raise LstmkitError(
                    f"{path}: {rows_text([row])} contain bytes that are not valid UTF-8; "
                    f"re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                ) from None
            if not line.strip():
                continue
            texts.append(line.rstrip("\r\n"))
            row += 1
            if len(texts) == size:
                yield TextChunk(texts, first, position)
                texts, first = [], row
    if texts:
        yield TextChunk(texts, first, position)
    elif row == 0:
        raise LstmkitError(f"{path}: no texts in the file; expected one text per line")


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
    if stream_format(path) == "lines":
        return _line_chunks(path, chunk_size)
    return _table_chunks(path, text_column, chunk_size)

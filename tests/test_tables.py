"""The shared table reader `lstmkit.data.tables.read_table`: each format, gzip, every error.

Files are written byte by byte (or by pyarrow for Parquet) and the expected frames are
spelled out by hand, so the reader is checked against the file's content, not itself.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstmkit.data import series, tables
from lstmkit.data.series import load_series
from lstmkit.data.tables import read_table, table_format
from lstmkit.data.text import load_labelled_text, texts_from_arguments
from lstmkit.errors import LstmkitError

CSV = 'text,label\n"he said ""hi"",\nthen left",1\nplain,0\n'
WANT = {"text": ['he said "hi",\nthen left', "plain"], "label": [1, 0]}


def _columns(df) -> dict[str, list]:
    return {str(c): df[c].tolist() for c in df.columns}


def _error(path: Path, **kw) -> str:
    with pytest.raises(LstmkitError) as info:
        read_table(path, **kw)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


@pytest.mark.parametrize(
    "name, data",
    [
        ("d.csv", CSV),
        ("d.txt", CSV),
        ("d.tsv", CSV.replace(",\nthen", "\tthen").replace(",", "\t").replace("\tthen", ",\nthen")),
        ("d.jsonl", '{"text": "he said \\"hi\\",\\nthen left", "label": 1}\n\n{"text": "plain", '
         '"label": 0}\n'),
        ("d.ndjson", '{"text": "he said \\"hi\\",\\nthen left", "label": 1}\n{"text": "plain", '
         '"label": 0}\n'),
    ],
)  # fmt: skip
@pytest.mark.parametrize("gz", [False, True])
def test_text_formats_plain_and_gzipped(tmp_path: Path, name: str, data: str, gz: bool) -> None:
    path = tmp_path / (name + ".gz" if gz else name)
    raw = data.encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    df = read_table(path)
    assert _columns(df) == WANT
    assert str(df["label"].dtype) == "int64"  # inferred without as_text


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"d{suffix}"
    pq.write_table(pa.table({"text": WANT["text"], "label": WANT["label"]}), path)
    assert _columns(read_table(path)) == WANT
    assert _columns(read_table(path, as_text=True)) == WANT  # Parquet keeps its types


def test_as_text_keeps_every_csv_cell_as_written(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nNA,007\n,1.0\nshort\n\n2024-01-01,nan\n")
    df = read_table(path, as_text=True)
    assert list(df.columns) == ["text", "label"]  # byte-order mark dropped
    assert _columns(df) == {
        "text": ["NA", "", "short", "2024-01-01"],  # blank line skipped
        "label": ["007", "1.0", "", "nan"],  # the short row's missing cell is empty
    }
    inferred = read_table(path)
    assert inferred["label"].tolist()[0] == 7.0  # without as_text pandas parses numbers


def test_a_one_megabyte_field_is_read_whole(tmp_path: Path) -> None:
    long = "word " * 200_000  # 1 MB, past the csv module's default 131,072-character limit
    path = tmp_path / "d.csv"
    path.write_text(f'text,label\n"{long}",pos\n')
    assert read_table(path, as_text=True)["text"].tolist() == [long]


def test_jsonl_keeps_json_types_and_names_absent_keys_none(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "extra": true}\n')
    df = read_table(path, as_text=True)
    assert list(df.columns) == ["text", "label", "extra"]
    assert _columns(df) == {"text": ["a", "b"], "label": [1, None], "extra": [None, True]}
    assert all(type(v) is int for v in df["label"].dropna())


def test_parquet_bytes_are_decoded_as_text_and_bad_rows_named(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": pa.array([b"caf\xc3\xa9", b"ok"], pa.binary())}), path)
    assert read_table(path, as_text=True)["text"].tolist() == ["café", "ok"]
    pq.write_table(pa.table({"text": pa.array([b"ok", b"caf\xe9", b"x\xff"], pa.binary())}), path)
    msg = _error(path, as_text=True)
    assert "rows 2, 3 of column 'text'" in msg and "UTF-8" in msg


def test_format_from_suffix() -> None:
    cases = {"a.csv": "csv", "a.TXT": "csv", "a.tsv.gz": "tsv", "a.ndjson": "jsonl",
             "a.jsonl.gz": "jsonl", "a.pq": "parquet", "dir.v2/a.Parquet": "parquet"}  # fmt: skip
    for name, fmt in cases.items():
        assert table_format(Path(name)) == fmt, name


def test_series_read_table_is_the_shared_reader() -> None:
    assert series.read_table is tables.read_table


# ------------------------------------------------------------------ errors, one line each
def test_missing_file_folder_and_unknown_suffix(tmp_path: Path) -> None:
    assert "does not exist" in _error(tmp_path / "nope.csv")
    assert "is a folder" in _error(tmp_path)
    for name in ("d.xlsx", "d", "d.parquet.gz", "d.json"):
        (tmp_path / name).write_text("x")
        msg = _error(tmp_path / name)
        assert "unknown file type" in msg and ".csv" in msg, name


@pytest.mark.parametrize("name", ["e.csv", "e.tsv", "e.jsonl", "e.csv.gz"])
def test_empty_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"") if name.endswith(".gz") else b"\n" * name.count("jsonl"))
    assert "the file is empty" in _error(path)


def test_header_only_is_a_table_without_rows(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("text,label\n")
    df = read_table(tmp_path / "h.csv", as_text=True)
    assert list(df.columns) == ["text", "label"] and len(df) == 0


def test_unreadable_files_name_the_format(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    assert "cannot read" in _error(tmp_path / "bad.parquet") and "as Parquet" in _error(
        tmp_path / "bad.parquet"
    )
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    assert "as CSV (gzipped)" in _error(tmp_path / "bad.csv.gz")
    (tmp_path / "q.csv").write_text('text,label\n"never closed,1\n')
    assert "cannot read" in _error(tmp_path / "q.csv", as_text=True)


def test_bytes_that_are_not_utf8_are_named_by_data_row(tmp_path: Path) -> None:
    # row 2 spans two lines (quoted newline), so data rows differ from file lines
    body = b'text,label\nfine,pos\n"two\nlines caf\xe9",neg\nok,pos\nna\xefve,neg\n'
    for name, raw in [("d.csv", body), ("d.csv.gz", gzip.compress(body))]:
        (tmp_path / name).write_bytes(raw)
        for as_text in (False, True):
            msg = _error(tmp_path / name, as_text=as_text)
            assert "rows 2, 4 contain bytes that are not valid UTF-8" in msg, (name, msg)
    (tmp_path / "h.csv").write_bytes(b"t\xe9xt,label\nfine,pos\n")
    assert "the header contains bytes" in _error(tmp_path / "h.csv")
    (tmp_path / "d.jsonl").write_bytes(b'{"text": "ok"}\n\n{"text": "caf\xe9"}\n')
    assert "row 2 contains bytes" in _error(tmp_path / "d.jsonl")


def test_jsonl_lines_that_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": oops}\n')
    assert "row 2 is not valid JSON" in _error(path)
    path.write_text('{"text": "a"}\n["a", 1]\n')
    assert "row 2 is a JSON list, expected an object" in _error(path)


def test_forecaster_data_with_bad_bytes_names_the_row(tmp_path: Path) -> None:
    """The forecaster used to print Python's codec error; it now names the data row."""
    path = tmp_path / "d.csv"
    path.write_bytes(b"date,y,note\n2020-01-01,1,a\n2020-02-01,2,caf\xe9\n2020-03-01,3,b\n")
    with pytest.raises(LstmkitError, match="row 2 contains bytes that are not valid UTF-8"):
        load_series(path, "y")


def test_rows_longer_than_the_header_are_named(tmp_path: Path) -> None:
    """An unquoted comma inside a text used to be dropped silently with the cells after it."""
    path = tmp_path / "d.csv"
    # data row 2 spans two lines and a blank line precedes row 3: rows 3 and 5 are long
    path.write_text('text,label\nfine,pos\n"two\nlines",neg\n\ngood, bad,neg\nok,pos\na,b,c\n')
    for as_text in (False, True):
        msg = _error(path, as_text=as_text)
        assert "rows 3, 5 have more fields than the header (2)" in msg, msg
        assert "double quotes" in msg
    path.write_text("text,label\ngood, bad,neg\nfine,pos\n")
    assert "row 1 has more fields than the header" in _error(path, as_text=True)
    (tmp_path / "d.tsv").write_text("text\tlabel\nfine\tpos\na\tb\tneg\n")
    msg = _error(tmp_path / "d.tsv")
    assert "row 2 has more fields" in msg and "a tab" in msg


def test_both_tasks_read_gzipped_tables(tmp_path: Path) -> None:
    texts = tmp_path / "reviews.csv.gz"
    texts.write_bytes(gzip.compress(b"text,label\ngreat film,1.0\nawful,0\nok then,1\n"))
    data = load_labelled_text(texts)
    assert data.texts == ["great film", "awful", "ok then"] and data.labels == [1, 0, 1]
    assert texts_from_arguments([str(texts)]) == ["great film", "awful", "ok then"]
    rows = "".join(f"2020-{m:02d}-01,{m * 1.5}\n" for m in range(1, 13))
    history = tmp_path / "sales.tsv.gz"
    history.write_bytes(gzip.compress(("month\tsales\n" + rows).replace(",", "\t").encode()))
    sd = load_series(history, "sales")
    assert sd.freq == "MS" and sd.series["0"].values[:, 0].tolist() == [
        m * 1.5 for m in range(1, 13)
    ]


# ------------------------------------------------------------------ streaming one column
def _stream(path: Path, column: str = "text", rows: int = 1) -> list:
    from lstmkit.data.tables import iter_column

    return list(iter_column(path, column, rows))


@pytest.mark.parametrize(
    "name, data",
    [
        ("d.csv", CSV),
        ("d.tsv", CSV.replace(",\nthen", "\tthen").replace(",", "\t").replace("\tthen", ",\nthen")),
        ("d.jsonl", '{"text": "he said \\"hi\\",\\nthen left", "label": 1}\n\n{"text": "plain", '
         '"label": 0}\n'),
    ],
)  # fmt: skip
@pytest.mark.parametrize("gz", [False, True])
def test_iter_column_streams_what_read_table_reads(
    tmp_path: Path, name: str, data: str, gz: bool
) -> None:
    path = tmp_path / (name + ".gz" if gz else name)
    raw = data.encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    chunks = _stream(path, rows=1)
    assert [c.values for c in chunks] == [[WANT["text"][0]], [WANT["text"][1]]]
    assert [c.first_row for c in chunks] == [0, 1]
    assert chunks[-1].position == path.stat().st_size  # the bytes on disk, read to the end
    labels = [v for c in _stream(path, "label", rows=5) for v in c.values]
    assert labels == (["1", "0"] if "jsonl" not in name else [1, 0])  # CSV cells are text


def test_iter_column_reads_parquet_by_row_batches_and_decodes_bytes(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": [b"caf\xc3\xa9", b"two", None], "n": [1, 2, 3]}), path)
    chunks = _stream(path, rows=2)
    assert [c.values for c in chunks] == [["caf\u00e9", "two"], [None]]
    assert [(c.first_row, c.position) for c in chunks] == [(0, 2), (2, 3)]  # rows for Parquet
    pq.write_table(pa.table({"text": [b"ok", b"bad \xff"]}), path)
    with pytest.raises(LstmkitError, match="row 2 of column 'text' contains bytes"):
        _stream(path)


def test_iter_column_never_holds_the_table(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "big.csv"
    row = "x" * 200
    path.write_text("id,text\n" + "".join(f"{i},{row} {i}\n" for i in range(40_000)))
    assert path.stat().st_size > 8_000_000
    from lstmkit.data.tables import iter_column

    tracemalloc.start()
    try:
        n = chunks = 0
        for chunk in iter_column(path, "text", 1000):
            assert len(chunk.values) <= 1000
            n, chunks = n + len(chunk.values), chunks + 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 40_000 and chunks == 40
    assert peak < 3_000_000, peak  # a chunk of 1000 texts, not the 8 MB file


def test_iter_column_errors_are_one_line(tmp_path: Path) -> None:
    cases = []
    p = tmp_path / "cols.csv"
    p.write_text("review\na\n")
    cases.append((p, r"no text column 'text'; the file has columns \['review'\]"))
    p = tmp_path / "rec.jsonl"
    p.write_text('{"text": "a"}\n{"body": "b"}\n')
    cases.append((p, r"row 2 has no field 'text' \(it has \['body'\]\)"))
    p = tmp_path / "obj.jsonl"
    p.write_text('{"text": "a"}\n[1]\n')
    cases.append((p, "row 2 is a JSON list, expected an object"))
    p = tmp_path / "bytes.jsonl"
    p.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    cases.append((p, "row 2 contains bytes that are not valid UTF-8"))
    p = tmp_path / "bytes.csv"
    p.write_bytes(b"text\nfine\nbad \xff\n")
    # pandas 2 decodes ahead of the first chunk, pandas 3 after it: either row is true
    cases.append((p, "bytes that are not valid UTF-8 at or after row [12];"))
    for i, body in enumerate(["text,n\na,1,9\nb,2\n", "text,n\na,1\nb,2,9\n"]):
        p = tmp_path / f"long{i}.csv"  # pandas only warns when it is the first data row
        p.write_text(body)  # the row itself is named, whichever chunk it starts
        cases.append((p, f"row {i + 1} has more fields than the header \\(2\\); put cells"))
    p = tmp_path / "damaged.csv.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff not deflate data " * 40)
    cases.append((p, r"damaged\.csv\.gz: not a readable gzip file"))
    p = tmp_path / "d.parquet.gz"
    p.write_bytes(b"x")
    cases.append((p, "a gzipped Parquet file cannot be read"))
    p = tmp_path / "notes.txt"
    p.write_text("a\n")
    cases.append((p, "not a table"))
    for path, expect in cases:
        with pytest.raises(LstmkitError, match=expect) as info:
            _stream(path)
        assert "\n" not in str(info.value), path

"""Labelled text collections from CSV / TSV / JSONL / Parquet files, with validation.

The files are read by the shared table reader `lstmkit.data.tables.read_table` (every CSV
cell as text); this module applies the text task's rules to the columns it returns.

`load_labelled_text` reads a table with a text column and a label column and
returns a `LabelledTexts` (texts plus raw labels, strings or integers). Every
problem a user can fix is reported as one `LstmkitError` line: a missing file,
an unknown format, a missing column (naming the columns that are there), empty
texts, texts holding a lone surrogate or missing labels (naming the rows), a
single class, bytes that are not UTF-8 (naming the rows). `load_text_data` also
accepts the IMDB archive/folder.

Rows are numbered from 1 over the data rows (a CSV header is not counted, a
JSONL file's rows are its non-blank lines).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence, Set
from pathlib import Path
from typing import Any

from lstmkit.data import tables
from lstmkit.data.imdb import is_imdb_source, load_imdb
from lstmkit.data.labelled import Label, LabelledTexts
from lstmkit.errors import LstmkitError

__all__ = [
    "TABLE_SUFFIXES",
    "Label",
    "LabelledTexts",
    "as_sequence",
    "check_batch_size",
    "check_text_values",
    "load_labelled_text",
    "load_text_data",
    "looks_like_path",
    "table_format",
    "texts_from_arguments",
    "validate_labelled",
    "validate_texts",
]

#: the suffixes a file of texts is read as a table by (`lstmkit.data.tables.STREAM_SUFFIXES`)
TABLE_SUFFIXES = tables.STREAM_SUFFIXES


_rows = tables.rows_text


def _have(indices: list[int]) -> str:
    """'row 3 has' / 'rows 3, 7 have' for 0-based ``indices``."""
    return f"{_rows(indices)} {'have' if len(indices) > 1 else 'has'}"


def _missing(value: object) -> bool:
    """A missing cell: None, or the float NaN pandas puts there."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _kind(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return "bytes"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def check_text_values(
    texts: Sequence[object], source: str, *, unit: str = "text", first: int = 0
) -> None:
    """Refuse, in one `LstmkitError` line, texts that are not usable strings.

    In this order: the first value that is neither a string nor missing (None, NaN) is
    named with its type ("text 3 is a list, not a string"; bytes: decode them first);
    the first string holding a lone surrogate (not encodable, e.g. from a JSON
    ``"\\ud800"``); then the rows whose text is missing or blank. ``unit``: "text" (a
    list given to the API) or "row" (a file's rows), numbered from ``first`` + 1.
    """
    for i, t in enumerate(texts):
        if not isinstance(t, str) and not _missing(t):
            if isinstance(t, bytes | bytearray):
                fix = "decode the texts first"
            else:
                fix = "pass one string per text" if unit == "text" else "write texts as strings"
            raise LstmkitError(
                f"{source}: {unit} {first + i + 1} is {_kind(t)}, not a string; {fix}"
            )
    for i, t in enumerate(texts):
        if isinstance(t, str):
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as err:
                raise LstmkitError(
                    f"{source}: {unit} {first + i + 1} holds a lone surrogate "
                    f"(U+{ord(t[err.start]):04X}) at character {err.start + 1}, which is not "
                    "text; pass valid Unicode"
                ) from None
    empty = [first + i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if empty:
        raise LstmkitError(
            f"{source}: {_have(empty)} an empty text; remove those rows or fill them in"
        )


def as_sequence(values: Any, name: str) -> list:
    """``values`` (texts, or their labels) as a list, one item per text.

    Refused in one `LstmkitError` line: a bare string or bytes (a common slip for
    ``[text]``), a mapping or a data frame (iterating them gives their keys, not texts), a
    set (it has no order to give results in) and anything that is not iterable.
    """
    if isinstance(values, str | bytes):
        raise LstmkitError(
            f"{name} must be a sequence (one item per text), got a single {type(values).__name__}"
            f"; wrap it in a list: [{values[:20]!r}]"
        )
    if isinstance(values, Mapping | Set) or type(values).__name__ == "DataFrame":
        raise LstmkitError(
            f"{name} must be a sequence (one item per text), got a {type(values).__name__}; "
            "pass a list (for a table, its column)"
        )
    try:
        return list(values)
    except TypeError:
        raise LstmkitError(
            f"{name} must be a sequence (one item per text), got {type(values).__name__}"
        ) from None


def check_batch_size(batch_size: Any) -> int | None:
    """A prediction's ``batch_size``: None (the model's default) or an integer >= 1."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise LstmkitError(
            f"batch_size must be a whole number >= 1 (or None for the model's default), got "
            f"{batch_size!r} ({type(batch_size).__name__})"
        )
    if batch_size < 1:
        raise LstmkitError(
            f"batch_size must be >= 1 (or None for the model's default), got {batch_size}"
        )
    return int(batch_size)


def table_format(path: Path) -> str:
    """The table format of ``path`` (`lstmkit.data.tables.table_format`), with the IMDB
    archive / folder named as the other input a text task accepts."""
    try:
        return tables.table_format(path)
    except LstmkitError as err:
        imdb = "or the IMDB archive aclImdb_v1.tar.gz / folder aclImdb"
        raise LstmkitError(f"{err} {imdb}") from None


def _column(path: Path, columns: list[str], name: str, role: str, option: str) -> None:
    if name not in columns:
        raise tables.missing_column(path, name, columns, role, option)


def _normalise_label(value: object) -> Label | None:
    """A label as str or int; None for missing values."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return int(value)
        raise ValueError(value)
    if hasattr(value, "item"):  # numpy scalars
        return _normalise_label(value.item())
    text = str(value).strip()
    return text or None


def _labels_from_strings(values: list[str | None]) -> list[str | int | float | None]:
    """CSV cells are strings; a label column is numeric when every cell is a finite number.

    Rule: when every present cell parses as an integer ("1", "-2") or a finite decimal
    number ("1.0", "0.0", "2e0"), the labels become numbers, and `validate_labelled` turns
    integral ones into ints (so "1.0" and "1" are the class 1, as the integer 1 in JSONL)
    and refuses fractional ones ("0.5"). Otherwise every label is a stripped string.
    """
    present = [v.strip() for v in values if v is not None and v.strip()]
    numbers = [_number(v) for v in present]
    numeric = bool(present) and all(n is not None for n in numbers)
    out: list[str | int | float | None] = []
    for v in values:
        if v is None or not v.strip():
            out.append(None)
        else:
            out.append(_number(v.strip()) if numeric else v.strip())
    return out


def _number(text: str) -> int | float | None:
    """``text`` as an int, else as a finite float, else None ("nan", "inf", "pos")."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def validate_labelled(
    texts: list[object],
    labels: list[object],
    source: str,
    *,
    min_classes: int = 2,
    unit: str = "text",
) -> LabelledTexts:
    """Check texts and labels and return them as a `LabelledTexts`.

    Raises LstmkitError naming the rows with empty texts or missing labels, and when
    there are no rows, mixed label types, non-integer numeric labels, fewer than
    ``min_classes`` classes, or not as many labels as texts.
    """
    if len(texts) != len(labels):
        raise LstmkitError(
            f"{source}: {len(texts)} texts but {len(labels)} labels; give one label per text"
        )
    if not texts:
        raise LstmkitError(f"{source}: no data rows; expected labelled texts, one per row")
    check_text_values(texts, source, unit=unit)
    clean: list[Label] = []
    missing, bad = [], []
    for i, value in enumerate(labels):
        try:
            label = _normalise_label(value)
        except ValueError:
            bad.append(i)
            continue
        if label is None:
            missing.append(i)
        else:
            clean.append(label)
    if missing:
        raise LstmkitError(
            f"{source}: {_have(missing)} no label; every row needs a label (a class "
            f"name or an integer)"
        )
    if bad:
        raise LstmkitError(
            f"{source}: {_have(bad)} a fractional label (e.g. {labels[bad[0]]!r}); labels "
            f"must be class names or integers"
        )
    kinds = {type(v) for v in clean}
    if len(kinds) > 1:
        raise LstmkitError(
            f"{source}: labels mix numbers and names; use one kind (all class names or all "
            f"integers)"
        )
    classes = sorted(set(clean))
    if len(classes) < min_classes:
        raise LstmkitError(
            f"{source}: all {len(clean)} rows have the label {classes[0]!r}; a classifier "
            f"needs at least two classes"
        )
    return LabelledTexts([str(t) for t in texts], clean, source)


def load_labelled_text(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    *,
    min_classes: int = 2,
) -> LabelledTexts:
    """Read a labelled text table (CSV, TSV, JSONL or Parquet; the text formats may be gzipped).

    Args:
        path: the file; its suffix picks the format (`lstmkit.data.tables.table_format`).
        text_column: name of the column holding the texts.
        label_column: name of the label column (strings or integers; binary or
            multi-class). Numbers are read alike from every format: integral floats
            become ints (1.0 in a CSV, in JSONL or in Parquet is the class 1),
            fractional ones are refused. None reads texts only (labels are then empty).
        min_classes: how many distinct labels are required (2 for training, 1 to
            evaluate on a file that holds one class only).

    Returns:
        LabelledTexts with n texts and n labels.
    """
    path = Path(path)
    if not path.exists():
        raise LstmkitError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise LstmkitError(
            f"{path}: is a folder; expected a CSV/JSONL/Parquet file or the IMDB folder aclImdb"
        )
    fmt = table_format(path)
    frame = tables.read_table(path, as_text=True)
    columns = [str(c).strip() for c in frame.columns]
    frame.columns = columns
    _column(path, columns, text_column, "text", "--text-column")
    texts = frame[text_column].tolist()
    labels: list = []
    if label_column is not None:
        _column(path, columns, label_column, "label", "--label-column")
        labels = frame[label_column].tolist()
        if fmt in ("csv", "tsv"):  # cells are texts: the numeric-label rule applies
            labels = _labels_from_strings(labels)
    if label_column is None:
        return validate_texts(texts, str(path), unit="row")
    return validate_labelled(texts, labels, str(path), min_classes=min_classes, unit="row")


def validate_texts(texts: list[object], source: str, *, unit: str = "text") -> LabelledTexts:
    """Check unlabelled texts (`check_text_values`) and return them with an empty label
    list."""
    if not texts:
        raise LstmkitError(f"{source}: no texts; expected at least one text")
    check_text_values(texts, source, unit=unit)
    return LabelledTexts([str(t) for t in texts], [], source)


def load_text_data(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    *,
    split: str = "train",
    min_classes: int = 2,
) -> LabelledTexts:
    """Labelled texts from a table file or from the IMDB archive / folder.

    ``split`` ("train" or "test") applies to IMDB only; tables are read whole.
    """
    path = Path(path)
    if not path.exists():
        raise LstmkitError(f"{path}: no such file or folder; check the path")
    if is_imdb_source(path):
        return load_imdb(path, split=split)
    return load_labelled_text(path, text_column, label_column, min_classes=min_classes)


#: Suffixes that make an argument of ``classify predict`` read as a file name.
FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet", ".pq", ".txt", ".gz")


def looks_like_path(arg: str) -> bool:
    """True for an argument meant as a file: one word ending in a known suffix or holding a
    path separator ("reviews.csv", "data/new", "C:\\x"); any text with a space is a text."""
    if not arg or any(ch.isspace() for ch in arg):
        return False
    return arg.lower().endswith(FILE_SUFFIXES) or "/" in arg or "\\" in arg


def texts_from_arguments(
    inputs: list[str], text_column: str = "text", literal: bool = False
) -> list[str]:
    """Texts from command-line arguments: one file (table or one text per line) or texts.

    Rule: with ``literal`` every argument is a text. Otherwise an argument naming an
    existing file is read (only one file at a time); an argument that looks like a path
    (`looks_like_path`) but does not exist, or names a folder, is an error.
    """
    if literal:
        return validate_texts(inputs, "command line texts").texts
    for arg in inputs:
        path = Path(arg)
        if arg and path.is_dir():
            raise LstmkitError(
                f"{arg}: is a folder; pass a file of texts, or --text to classify it as a text"
            )
        if looks_like_path(arg) and not path.exists():
            raise LstmkitError(
                f"{arg}: no such file; check the path, or pass --text to classify the "
                f"argument as a text"
            )
    files = [arg for arg in inputs if arg and Path(arg).is_file()]
    if files and len(inputs) > 1:
        raise LstmkitError(
            f"{files[0]} is a file among {len(inputs)} arguments; pass one file on its own, "
            f"or --text to classify every argument as a text"
        )
    if files:
        path = Path(files[0])
        name = path.name.lower().removesuffix(".gz")
        if name.endswith(tuple(TABLE_SUFFIXES)):
            return load_labelled_text(path, text_column, None).texts
        if path.suffix.lower() == ".json":
            raise LstmkitError(
                f"{path}: a .json file is not read as texts; give a .jsonl file (one JSON "
                f'object such as {{"text": "..."}} per line), a table or one text per line'
            )
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise LstmkitError(f"{path}: not a UTF-8 text file; re-save it as UTF-8") from None
        texts = [line for line in lines if line.strip()]
        if not texts:
            raise LstmkitError(f"{path}: no texts in the file; expected one text per line")
        return texts
    return validate_texts(inputs, "command line texts").texts

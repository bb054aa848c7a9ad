"""Unlabelled text corpora, streamed from disk: the input of language-model pretraining.

A `TextCorpus` is a re-iterable source of texts that never holds the whole corpus in
memory. Each source is one of:

- a text file (``.txt``, or any other suffix) holding one text per line;
- a table (``.csv``/``.tsv``/``.jsonl``/``.parquet``, optionally ``.gz`` for the text
  formats) with a text column, read in chunks by the one table reader
  (`lstmkit.data.tables.iter_column`);
- the IMDB archive ``aclImdb_v1.tar.gz`` or its extracted ``aclImdb/`` folder: the
  25,000 training reviews and the 50,000 unlabelled ones (never the test reviews);
- a folder of ``.txt`` files, one text per file;
- an in-memory sequence of strings (the Python API).

Blank texts (empty or whitespace only) are skipped. Bytes that are not UTF-8 are an
error naming the file and line, and a corpus with no text at all is an error too,
both one `LstmkitError` line, as are a damaged gzip file and a path that is not a
regular file or folder (a device such as /dev/zero, a pipe, a socket: refused before
anything is read).

Long texts: a text longer than `MAX_TEXT_BYTES` (64 KiB of UTF-8) is handed on as
consecutive texts of at most that size, each cut after the last whitespace before the
limit (or, in 64 KiB without whitespace, at a character boundary). Lines of text files,
``.txt`` files of folders and IMDB reviews are read in pieces of that size, so a line of
any length (a 20 MB line, a file without a newline) is streamed in bounded memory; a
table cell or JSONL record is parsed whole (a parser needs all of it) and cut after.
Pretraining cuts texts into pieces of ``max_length`` tokens anyway, so only the few
tokens at a cut see a different context.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from lstmkit.data.imdb import is_imdb_source
from lstmkit.data.tables import READ_ERRORS, ByteSource, iter_column, stream_format, unreadable
from lstmkit.errors import LstmkitError

#: IMDB members pretraining reads: the labelled training reviews and the unlabelled ones.
_IMDB_MEMBER = re.compile(r"(?:^|/)train/(neg|pos|unsup)/\d+_\d+\.txt$")
_CHUNK_ROWS = 4096
#: the longest text a corpus yields, in bytes of UTF-8 (longer ones are cut, see above)
MAX_TEXT_BYTES = 1 << 16
_WHITESPACE = (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c")


def _not_utf8(path: Path, where: str) -> LstmkitError:
    return LstmkitError(
        f"{path}: {where} is not valid UTF-8; convert the file to UTF-8 (e.g. iconv -t utf-8)"
    )


def _cut_point(data: bytes) -> int:
    """Where to cut ``data`` (longer than `MAX_TEXT_BYTES`): after its last whitespace
    byte within the limit, else at the last UTF-8 character boundary within it."""
    head = data[:MAX_TEXT_BYTES]
    space = max(head.rfind(w) for w in _WHITESPACE)
    if space >= 0:
        return space + 1
    cut = MAX_TEXT_BYTES
    while cut > 0 and data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
        cut -= 1
    return cut or MAX_TEXT_BYTES


def _read_pieces(fh: IO[bytes], by_line: bool) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, bytes) of each line of ``fh`` (by_line), or of its whole
    content, without the line end; one longer than `MAX_TEXT_BYTES` comes as several
    pieces (`_cut_point`) with the same line number. Never reads more than
    `MAX_TEXT_BYTES` at a time, so memory stays bounded whatever the lengths."""
    number, buf = 1, b""
    while True:
        chunk = fh.readline(MAX_TEXT_BYTES) if by_line else fh.read(MAX_TEXT_BYTES)
        buf += chunk
        line_end = by_line and chunk.endswith(b"\n")
        if line_end:
            buf = buf.rstrip(b"\r\n")
        while len(buf) > MAX_TEXT_BYTES:
            cut = _cut_point(buf)
            yield number, buf[:cut]
            buf = buf[cut:]
        if line_end:
            yield number, buf
            number, buf = number + 1, b""
        elif not chunk:  # the end of the file
            if buf:
                yield number, buf.rstrip(b"\r\n") if by_line else buf
            return


def _cut_text(text: str) -> Iterator[str]:
    """``text`` as pieces of at most `MAX_TEXT_BYTES` of UTF-8 (`_cut_point`)."""
    if len(text) * 4 <= MAX_TEXT_BYTES:  # a character is at most 4 bytes
        yield text
        return
    data = text.encode("utf-8", errors="surrogatepass")
    while len(data) > MAX_TEXT_BYTES:
        cut = _cut_point(data)
        yield data[:cut].decode("utf-8", errors="surrogatepass")
        data = data[cut:]
    yield data.decode("utf-8", errors="surrogatepass")


def _decoded(
    path: Path, pieces: Iterator[tuple[int, bytes]], where: str | None = None
) -> Iterator[str]:
    """The pieces decoded; a bad byte names ``where`` (default: the line number)."""
    for number, raw in pieces:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_utf8(path, where or f"line {number}") from None


def _lines(path: Path) -> Iterator[str]:
    """The lines of a text file (gzip when it ends in .gz), each decoded on its own so
    that a bad byte is reported with its line number; a line longer than
    `MAX_TEXT_BYTES` comes as several texts, read in bounded memory."""
    try:
        with ByteSource(path) as source:
            yield from _decoded(path, _read_pieces(source.stream, by_line=True))
    except READ_ERRORS as err:
        raise unreadable(path, err) from None


def _table_rows(path: Path, column: str) -> Iterator[str]:
    """The texts of a table's ``column`` (`lstmkit.data.tables.iter_column`); missing
    values are skipped, other values taken as their text."""
    for chunk in iter_column(path, column, _CHUNK_ROWS):
        for value in chunk.values:
            if value is not None:
                yield value if isinstance(value, str) else str(value)


def _imdb_rows(path: Path) -> Iterator[str]:
    """The IMDB training and unlabelled reviews, streamed from the archive or folder."""
    if path.is_dir():
        root = path if (path / "train").is_dir() else path / "aclImdb"
        for part in ("neg", "pos", "unsup"):
            folder = root / "train" / part
            for file in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
                yield from _file_texts(file, "the review")
        return
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isfile() or _IMDB_MEMBER.search(member.name) is None:
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                pieces = _read_pieces(fh, by_line=False)
                yield from _decoded(path, pieces, f"review {member.name}")
    except (tarfile.TarError, *READ_ERRORS) as err:
        raise LstmkitError(
            f"{path}: not a readable tar archive ({err}); expected aclImdb_v1.tar.gz"
        ) from None


def _folder_rows(path: Path) -> Iterator[str]:
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise LstmkitError(f"{path}: a folder without .txt files; pass text files or a table")
    for file in files:
        yield from _file_texts(file, "the file")


def _file_texts(file: Path, where: str) -> Iterator[str]:
    """The whole content of ``file`` as one text (pieces when longer than `MAX_TEXT_BYTES`)."""
    try:
        with open(file, "rb") as fh:
            yield from _decoded(file, _read_pieces(fh, by_line=False), where)
    except OSError as err:
        raise LstmkitError(f"{file}: cannot be read ({err})") from None


def iter_source(path: str | Path, text_column: str = "text") -> Iterator[str]:
    """The raw texts of one file or folder, in file order (blank ones included)."""
    path = Path(path)
    _check_path(path)
    if is_imdb_source(path):
        yield from _imdb_rows(path)
    elif path.is_dir():
        yield from _folder_rows(path)
    elif stream_format(path) is None:
        yield from _lines(path)
    else:
        yield from _cut_texts(_table_rows(path, text_column))


def _cut_texts(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        yield from _cut_text(text)


def _check_path(path: Path) -> None:
    """Refuse a missing path and one that is neither a regular file nor a folder."""
    if not path.exists():
        raise LstmkitError(f"{path}: no such file or folder; check the path")
    if not path.is_file() and not path.is_dir():
        raise LstmkitError(
            f"{path}: not a regular file or folder (a device, pipe or socket); pass text "
            "files, tables or folders"
        )


class TextCorpus:
    """A re-iterable stream of non-blank texts from files, folders or a list of strings.

    ``sources``: one path, several paths, or a sequence of strings (texts, not paths:
    the Python API passes texts in memory). Iterating reads the sources again from
    the start each time; `check` reads until the first text to fail early on an
    empty corpus.
    """

    def __init__(
        self, sources: str | Path | Sequence[str | Path] | Iterable[str], text_column: str = "text"
    ) -> None:
        self.text_column = text_column
        if isinstance(sources, (str, Path)):
            self.paths: list[Path] | None = [Path(sources)]
            self.texts: Sequence[str] | None = None
        elif (
            isinstance(sources, Sequence) and sources and all(isinstance(s, Path) for s in sources)
        ):
            self.paths, self.texts = [Path(s) for s in sources], None
        elif isinstance(sources, Sequence) and not isinstance(sources, (bytes, bytearray)):
            bad = next((type(s).__name__ for s in sources if not isinstance(s, str)), None)
            if bad is not None:
                raise LstmkitError(f"texts must be strings, got a {bad}; pass a list of str")
            self.paths, self.texts = None, sources
        else:
            raise LstmkitError(
                f"a corpus is a path, a list of paths or a list of texts, got "
                f"{type(sources).__name__}"
            )
        self.describe = (
            ", ".join(str(p) for p in self.paths)
            if self.paths
            else f"{len(self.texts or [])} texts"
        )

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], text_column: str = "text") -> TextCorpus:
        """A corpus of files and folders (command-line arguments are paths, never texts)."""
        if not paths:
            raise LstmkitError("no corpus given; pass text files, tables or the IMDB archive")
        return cls([Path(p) for p in paths], text_column)

    def __iter__(self) -> Iterator[str]:
        raw: Iterable[str]
        if self.paths is not None:
            raw = (t for p in self.paths for t in iter_source(p, self.text_column))
        else:
            raw = _cut_texts(self.texts or [])
        for text in raw:
            if text and not text.isspace():
                yield text

    def check(self) -> None:
        """Raise `LstmkitError` when the corpus holds no non-blank text (or cannot be read)."""
        if self.paths is not None:
            for p in self.paths:
                _check_path(p)
        for _ in self:
            return
        raise LstmkitError(
            f"the corpus ({self.describe}) holds no text (empty or only whitespace); "
            "pass files with one text per line or a table with a text column"
        )

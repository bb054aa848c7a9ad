"""Word vectors from a file (word2vec / GloVe text format) for a classifier's embedding.

The format is one word a line followed by its numbers, separated by spaces
(``the 0.418 0.24968 -0.41242 ...``), optionally after word2vec's header line
``<count> <dim>``; the file may be gzipped (recognised by its first bytes). The file is
streamed line by line and only the rows of words in the vocabulary are kept, so a
vectors file larger than memory works. File words are normalised as the tokenizer
normalises text (``normalise``, e.g. lower-casing), and the first vector of a word
wins (files list frequent spellings first).

`vector_file_dim` checks a file and returns its dimension before any training;
`match_word_vectors` returns the vocabulary ids found and their vectors. Every problem
(a missing, empty, non-UTF-8 or malformed file, a damaged gzip file, a line longer than
`MAX_LINE_BYTES`, a path that is not a regular file such as /dev/zero, a dimension that
differs from the embedding's) is one `LstmkitError` line naming the file and, where it
helps, the line; a line is never read beyond `MAX_LINE_BYTES`, so memory stays bounded.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from lstmkit.errors import LstmkitError

__all__ = ["VectorMatch", "match_word_vectors", "vector_file_dim"]

_FIX = "give a word2vec/GloVe text file: one word and its numbers per line"
#: the longest line read (a 300-dimensional vector takes about 3 KB; 1 MiB holds ~100,000)
MAX_LINE_BYTES = 1 << 20


@dataclass
class VectorMatch:
    """Vocabulary ids found in a vectors file and their vectors.

    ids: (found,) int64 vocabulary ids; vectors: (found, dim) float32; dim: numbers per
    word; lines: vector lines read from the file.
    """

    ids: np.ndarray
    vectors: np.ndarray
    dim: int
    lines: int


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, space-separated fields) of each non-blank line."""
    if not path.exists():
        raise LstmkitError(f"word vectors {path}: no such file; check the path")
    if path.is_dir():
        raise LstmkitError(f"word vectors {path}: is a folder; {_FIX}")
    if not path.is_file():
        raise LstmkitError(
            f"word vectors {path}: not a regular file (a device, pipe or socket); {_FIX}"
        )
    try:
        with _open(path) as fh:
            number = 0
            while raw := fh.readline(MAX_LINE_BYTES + 1):
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise LstmkitError(
                        f"word vectors {path}: line {number} is longer than "
                        f"{MAX_LINE_BYTES:,} bytes; {_FIX}"
                    )
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise LstmkitError(
                        f"word vectors {path}: line {number} holds bytes that are not valid "
                        f"UTF-8; re-save the file as UTF-8"
                    ) from None
                fields = line.rstrip("\r\n").rstrip(" ").split(" ")
                if fields != [""]:
                    yield number, fields
    except (zlib.error, gzip.BadGzipFile, EOFError) as err:  # only gzip reading raises these
        raise LstmkitError(
            f"word vectors {path}: starts like gzip but is not a readable gzip file ({err}); "
            "it is damaged or not gzip (check it with gzip -t)"
        ) from None
    except OSError as err:
        raise LstmkitError(f"word vectors {path}: cannot be read ({err}); {_FIX}") from None


def _is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def _parse(path: Path, number: int, fields: list[str], dim: int) -> tuple[str, np.ndarray]:
    if len(fields) < dim + 1:
        raise LstmkitError(
            f"word vectors {path}: line {number} has {len(fields) - 1} numbers, expected a "
            f"word and {dim}; {_FIX}"
        )
    try:
        values = np.array(fields[-dim:], dtype=np.float32)
    except ValueError:
        raise LstmkitError(
            f"word vectors {path}: line {number} holds a value that is not a number; {_FIX}"
        ) from None
    if not np.isfinite(values).all():
        raise LstmkitError(f"word vectors {path}: line {number} holds NaN or infinite values")
    return " ".join(fields[:-dim]), values


def vector_file_dim(path: str | Path, embedding_dim: int | None = None) -> int:
    """The number of values per word in the vectors file ``path`` (from the word2vec
    header, else from the first line), checked against ``embedding_dim`` when given."""
    path = Path(path)
    header_dim = None
    for number, fields in _lines(path):
        if number == 1 and _is_header(fields):
            header_dim = int(fields[1])
            continue
        dim = header_dim if header_dim is not None else len(fields) - 1
        if dim < 1:
            raise LstmkitError(f"word vectors {path}: line {number} holds no numbers; {_FIX}")
        _parse(path, number, fields, dim)
        if embedding_dim is not None and dim != embedding_dim:
            raise LstmkitError(
                f"word vectors {path} have {dim} dimensions but embedding_dim is "
                f"{embedding_dim}; set embedding_dim={dim} (--embedding-dim {dim}) or use "
                f"vectors of size {embedding_dim}"
            )
        return dim
    raise LstmkitError(f"word vectors {path}: the file holds no vectors; {_FIX}")


def match_word_vectors(
    path: str | Path,
    vocabulary: Mapping[str, int],
    normalise: Callable[[str], str],
    embedding_dim: int,
) -> VectorMatch:
    """Vectors of the vocabulary's tokens found in ``path``.

    Args:
        path: the vectors file (word2vec/GloVe text format, optionally gzipped).
        vocabulary: token -> id (the tokenizer's vocabulary).
        normalise: applied to each file word before the look-up (the tokenizer's
            normalisation, e.g. lower-casing); the first vector of a token wins.
        embedding_dim: the dimension every vector must have.
    """
    path = Path(path)
    dim = vector_file_dim(path, embedding_dim)
    ids: list[int] = []
    rows: list[np.ndarray] = []
    seen: set[int] = set()
    lines = 0
    for number, fields in _lines(path):
        if number == 1 and _is_header(fields):
            continue
        word, values = _parse(path, number, fields, dim)  # a word may hold spaces
        lines += 1
        token = vocabulary.get(normalise(word))
        if token is not None and token not in seen:
            seen.add(token)
            ids.append(token)
            rows.append(values)
    vectors = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return VectorMatch(np.asarray(ids, dtype=np.int64), vectors, dim, lines)

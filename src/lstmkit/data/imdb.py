"""The Large Movie Review Dataset (IMDB, Maas et al. 2011): reader and optional download.

`load_imdb` reads the official ``aclImdb_v1.tar.gz`` archive by streaming its
members (nothing is unpacked to disk) or an extracted ``aclImdb/`` folder, and
returns one split ("train" or "test", 25,000 reviews each, labels "neg"/"pos")
as `LabelledTexts`; the star rating from each file name is kept in
``extra["rating"]``. `download_imdb` fetches the official archive and checks
its SHA-256; without a network it fails with one clear line.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from lstmkit.data.labelled import LabelledTexts
from lstmkit.errors import LstmkitError
from lstmkit.io.atomic import atomic_write

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
#: SHA-256 of the official archive as published by its mirrors (84,125,825 bytes).
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
SPLITS = ("train", "test")
LABELS = ("neg", "pos")
_MEMBER = re.compile(r"(?:^|/)(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")


def _archive_suffix(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar.gz", ".tgz", ".tar"))


def _folder_root(path: Path) -> Path | None:
    """The folder holding train/ and test/ (``path`` itself or ``path/aclImdb``)."""
    for root in (path, path / "aclImdb"):
        if (root / "train" / "pos").is_dir() or (root / "test" / "pos").is_dir():
            return root
    return None


def is_imdb_source(path: str | Path) -> bool:
    """True when ``path`` is a tar archive or a folder in the aclImdb layout."""
    path = Path(path)
    if path.is_dir():
        return _folder_root(path) is not None
    return _archive_suffix(path)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise LstmkitError(f"unknown IMDB split {split!r}; expected one of {list(SPLITS)}")


def _collect(rows: list[tuple[int, int, int, str]], source: str, split: str) -> LabelledTexts:
    if not rows:
        raise LstmkitError(
            f"{source}: no reviews found for split {split!r}; expected files "
            f"aclImdb/{split}/{{pos,neg}}/<id>_<rating>.txt (the official IMDB layout)"
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    return LabelledTexts(
        texts=[r[3] for r in rows],
        labels=[LABELS[r[0]] for r in rows],
        source=f"{source} ({split})",
        extra={"rating": [r[2] for r in rows]},
    )


def _decode_review(data: bytes, name: str, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise LstmkitError(
            f"{source}: review {name} is not valid UTF-8; the archive looks damaged, "
            f"download it again"
        ) from None


def read_imdb_archive(
    path: str | Path, splits: tuple[str, ...] = SPLITS
) -> dict[str, LabelledTexts]:
    """Read the requested splits of an aclImdb tar(.gz) archive in one streaming pass.

    Returns {split: LabelledTexts} with 25,000 reviews per split for the official archive.
    """
    path = Path(path)
    for s in splits:
        _check_split(s)
    rows: dict[str, list] = {s: [] for s in splits}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                m = _MEMBER.search(member.name)
                if m is None or m.group(1) not in rows:
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                text = _decode_review(fh.read(), member.name, str(path))
                rows[m.group(1)].append(
                    (LABELS.index(m.group(2)), int(m.group(3)), int(m.group(4)), text)
                )
    except (tarfile.TarError, OSError, EOFError) as err:
        raise LstmkitError(
            f"{path}: not a readable tar archive ({err}); expected aclImdb_v1.tar.gz, "
            f"download it again or pass the extracted aclImdb folder"
        ) from None
    return {s: _collect(rows[s], str(path), s) for s in splits}


def read_imdb_folder(
    path: str | Path, splits: tuple[str, ...] = SPLITS
) -> dict[str, LabelledTexts]:
    """Read the requested splits of an extracted ``aclImdb`` folder."""
    path = Path(path)
    root = _folder_root(path)
    if root is None:
        raise LstmkitError(
            f"{path}: not an IMDB folder; expected aclImdb/{{train,test}}/{{pos,neg}}/*.txt"
        )
    out = {}
    for split in splits:
        _check_split(split)
        rows = []
        for li, label in enumerate(LABELS):
            folder = root / split / label
            if not folder.is_dir():
                continue
            for file in folder.iterdir():
                m = _MEMBER.search(f"{split}/{label}/{file.name}")
                if m is None:
                    continue
                text = _decode_review(file.read_bytes(), str(file), str(path))
                rows.append((li, int(m.group(3)), int(m.group(4)), text))
        out[split] = _collect(rows, str(path), split)
    return out


def load_imdb_splits(
    path: str | Path | None = None, splits: tuple[str, ...] = SPLITS
) -> dict[str, LabelledTexts]:
    """Several IMDB splits from an archive or folder, reading an archive only once.

    ``path`` None uses the downloaded copy (see `default_archive_path`), which must exist.
    """
    if path is None:
        path = default_archive_path()
        if not path.exists():
            raise LstmkitError(
                f"no IMDB archive at {path}; pass the path of aclImdb_v1.tar.gz or call "
                f"lstmkit.data.imdb.download_imdb() first"
            )
    path = Path(path)
    if not path.exists():
        raise LstmkitError(
            f"{path}: no such file or folder; expected aclImdb_v1.tar.gz or aclImdb/"
        )
    if path.is_dir():
        return read_imdb_folder(path, splits)
    return read_imdb_archive(path, splits)


def load_imdb(path: str | Path | None = None, split: str = "train") -> LabelledTexts:
    """One IMDB split ("train" or "test") with labels "neg"/"pos", from an archive or folder."""
    _check_split(split)
    return load_imdb_splits(path, (split,))[split]


def default_archive_path() -> Path:
    """Where `download_imdb` stores the archive: $LSTMKIT_DATA or ~/.cache/lstmkit."""
    base = os.environ.get("LSTMKIT_DATA") or Path.home() / ".cache" / "lstmkit"
    return Path(base) / "aclImdb_v1.tar.gz"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise LstmkitError unless ``path`` has SHA-256 ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise LstmkitError(
            f"{path}: checksum mismatch (sha256 {actual[:12]}..., expected {expected[:12]}...); "
            f"the download is damaged or not the official archive, delete it and try again"
        )


def download_imdb(
    dest: str | Path | None = None,
    *,
    url: str = IMDB_URL,
    sha256: str | None = IMDB_SHA256,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download the IMDB archive to ``dest`` (default `default_archive_path`), checking SHA-256.

    An existing file with the right checksum is reused. The download goes to a
    temporary file beside ``dest`` and is moved into place only after the checksum
    matches (`lstmkit.io.atomic_write`: the file gets the umask's permissions), so a
    failed or interrupted download leaves nothing behind. Without a
    network, raises LstmkitError with one line saying how to get the file by hand.
    """
    dest = Path(dest) if dest is not None else default_archive_path()
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256.lower()):
        return dest

    def fetch(tmp: Path) -> None:  # writes the temporary file atomic_write renames
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise LstmkitError(
                f"cannot download {url} ({reason}); no network? download it by hand and "
                f"pass its path (e.g. lstmkit classify train aclImdb_v1.tar.gz)"
            ) from None
        with response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            _copy(response, out, total, progress, url)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None:
            verify_sha256(tmp, sha256)

    atomic_write(dest, fetch)
    return dest


def _copy(response, out, total: int | None, progress: bool, url: str) -> None:
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"downloading {url.rsplit('/', 1)[-1]}", total=total)
        try:
            while block := response.read(1 << 20):
                out.write(block)
                bar.advance(task, len(block))
        except OSError as err:
            raise LstmkitError(f"download of {url} interrupted ({err}); try again") from None

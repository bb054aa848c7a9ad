"""The one place lstmkit writes outputs atomically: files and whole folders.

Files: `atomic_write` calls a writer on a temporary file beside the target and
renames it over the target (`atomic_write_bytes` / `atomic_write_text` for
ready data), so a reader or a crash sees either the old file or the complete
new one. `check_writable` finds, before any work, an output that cannot be written;
`check_outside` one that lies inside a folder replaced as a whole.

Folders: `staged_dir` yields an empty temporary sibling folder
(``.<name>.tmp-<pid>-<random>``) to build a whole output in, and on success
`replace_dir` swaps it in: the old folder is renamed to
``.<name>.old-<pid>-<random>``, the new one renamed into place, the old one
removed. A kill between those two renames leaves no folder at the path but the
complete previous one beside it; `recover_dir` (run before every staged write
and every model load) renames it back, and removes stale temporary and backup
folders whose process is gone. On any error inside `staged_dir` the temporary
folder is removed and the previous output is untouched.

Everything written gets the permissions the umask gives a normal file or
folder (``tempfile`` would leave 0600 / 0700).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lstmkit.errors import LstmkitError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike[str]) -> Path:
    """Give the file ``path`` the permissions the umask gives a new file (0644 under umask
    022), for files written by libraries that create them 0600 (safetensors' ``save_file``
    does, as ``tempfile`` does)."""
    path = Path(path)
    os.chmod(path, 0o666 & ~_umask())
    return path


def _os_error(path: Path, err: OSError) -> LstmkitError:
    reason = err.strerror or type(err).__name__
    return LstmkitError(f"cannot write {path}: {reason}; choose a location you can write to")


def check_writable(folder: str | os.PathLike[str], option: str) -> Path:
    """Refuse, before any work, an output whose folder cannot be created or written.

    The nearest existing ancestor of ``folder`` (``folder`` itself if it exists) must
    be a folder in which a temporary folder can be made: tried for real, since
    permission bits say nothing for root and a read-only file system only shows on a
    write. ``option`` names the argument in the message (e.g. ``"--out"``). Returns
    that ancestor; raises `LstmkitError` (one line) otherwise.
    """
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise LstmkitError(f"{option}: {probe} is a file, not a folder; choose another path")
    try:
        tempfile.TemporaryDirectory(dir=probe, prefix=".lstmkit-write-check-").cleanup()
    except OSError as err:
        raise LstmkitError(
            f"{option}: cannot write in {probe} ({err.strerror}); choose a folder you can write to"
        ) from None
    return probe


def check_outside(
    path: str | os.PathLike[str], option: str, out: str | os.PathLike[str], out_option: str
) -> None:
    """Refuse, before any work, a folder ``path`` (given as ``option``, e.g.
    ``--checkpoint-dir``) that is ``out`` or lies inside it, when ``out`` (``out_option``)
    is replaced as a whole at the end (`staged_dir`): what was written there would be lost
    with the old ``out``. One `LstmkitError` line."""
    inner, outer = Path(path).resolve(), Path(out).resolve()
    if outer == inner or outer in inner.parents:
        raise LstmkitError(
            f"{option} {path} is inside {out_option} {out}, which is replaced as a whole at the "
            f"end; put the {option.lstrip('-').replace('-', ' ')} in another folder"
        )


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp)`` to write a temporary file beside ``path``, then rename it to
    ``path`` (creating parent folders). Returns ``path``.

    Raises `LstmkitError` when ``path`` is a folder or cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise LstmkitError(f"{path} is a folder; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise _os_error(path, err) from None
    tmp = Path(name)
    try:
        writer(tmp)
        follow_umask(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _os_error(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent folders) and return the path."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _siblings(path: Path, what: str) -> list[Path]:
    """Temporary (``tmp``) or backup (``old``) folders of ``path``, newest first."""
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{what}-(\d+)-[0-9a-f]+")
    found = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _pid(p: Path) -> int:
    return int(p.name.rsplit("-", 2)[-2])


def recover_dir(path: str | os.PathLike[str]) -> None:
    """Undo an interrupted `replace_dir` and clean up after killed writers.

    If ``path`` is missing but a backup ``.<name>.old-*`` of it exists whose writer
    no longer runs (a live one is between its two renames), the newest such backup
    is renamed back to ``path``. Backups and temporary folders left by
    processes that no longer run are removed.
    """
    path = Path(path)
    try:
        old = [p for p in _siblings(path, "old") if not _alive(_pid(p))]  # not mid-swap
        if not path.exists() and old:
            os.replace(old.pop(0), path)
        for stale in [*old, *_siblings(path, "tmp")]:
            if not _alive(_pid(stale)):
                shutil.rmtree(stale, ignore_errors=True)
    except OSError:
        pass  # recovery is best effort; the caller reports what it then cannot read


def _sibling(path: Path, what: str) -> Path:
    return path.parent / f".{path.name}.{what}-{os.getpid()}-{secrets.token_hex(4)}"


def replace_dir(new: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Move the complete folder ``new`` to ``path``, replacing any folder there
    (recoverably, see the module docstring). Both must be on the same file system."""
    new, path = Path(new), Path(path)
    if path.exists():
        old = _sibling(path, "old")
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)
    return path


@contextmanager
def staged_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder's whole new content in a temporary sibling, swapped in on success.

    ``with staged_dir(out) as tmp: ...`` yields an empty folder; when the block
    ends without an error it replaces ``out`` (see `replace_dir`); on an error it
    is removed and ``out`` is untouched. The temporary folder is created at
    entry, so an unwritable location is reported before any work is done.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LstmkitError(f"{path} is a file; give a folder for the outputs")
    recover_dir(path)
    tmp = _sibling(path, "tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(mode=0o777)  # the umask applies
    except OSError as err:
        raise _os_error(path, err) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        replace_dir(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _os_error(path, err) from None

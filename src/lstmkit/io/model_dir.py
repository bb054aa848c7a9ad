"""Save and load lstmkit model directories (config JSON + safetensors weights + extras).

Layout of a saved model directory::

    config.json          {"lstmkit_version": "0.1.0", "kind": "forecaster", "config": {...}}
    model.safetensors    the state dict
    <extras>             e.g. scaler.json, tokenizer.json

config.json also lists the SHA-256 digest of every other file in the folder
(``files``); loading checks each, so a file damaged or cut short since the save
is refused by name instead of loading wrong weights, scaling or contexts (folders
saved before the digests load unchecked). Directories written by a newer major
version, of another kind, or missing any of these files are refused with a
one-line `LstmkitError`. Saving replaces the
whole folder in one recoverable swap (`lstmkit.io.atomic.staged_dir`) and
refuses to replace a folder that is not an lstmkit model or holds a model of
another kind (`check_model_target`, which commands call before training).
`read_model_meta` reads and checks ``config.json`` alone (its ``kind`` tells
`lstmkit.kinds` which code loads the folder).

Torch is imported only by `save_model_dir` and `load_model_dir` (the weights), so
that reading a folder's kind, or checking a target, works without it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from lstmkit import __version__
from lstmkit.errors import LstmkitError
from lstmkit.io.atomic import follow_umask, recover_dir, staged_dir
from lstmkit.io.checksum import file_checksum
from lstmkit.io.version import check_version

if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: the key of config.json that maps each other file of the folder to its SHA-256 digest
FILES_KEY = "files"


def file_digests(folder: Path) -> dict[str, str]:
    """The SHA-256 digest (hex) of every file under ``folder`` but its config.json, by
    its path relative to the folder (with ``/``)."""
    out = {}
    for item in sorted(folder.rglob("*")):
        name = item.relative_to(folder).as_posix()
        if item.is_file() and name != CONFIG_FILE:
            out[name] = file_checksum(item)
    return out


def check_file_digests(path: Path, meta: Mapping[str, Any]) -> None:
    """Check every file config.json lists (``files``) against its digest: a missing one
    means an incomplete folder, another digest a damaged file; one `LstmkitError` line
    each. A folder saved before the digests lists none and is not checked."""
    listed = meta.get(FILES_KEY)
    if listed is None:
        return
    where = path / CONFIG_FILE
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in listed.items()
    ):
        raise LstmkitError(f"{where} is damaged (its file digests are not a mapping); save again")
    for name, digest in listed.items():
        item = path / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise LstmkitError(f"{where} is damaged (it lists {name!r}); save the model again")
        try:
            found = file_checksum(item)
        except OSError:
            raise LstmkitError(
                f"model directory {path} has no {name}; it is incomplete, save the model again"
            ) from None
        if found != digest:
            raise LstmkitError(
                f"model directory {path} is damaged: {name} changed since the model was saved "
                "(its SHA-256 digest differs); save the model again"
            )


def read_model_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``path/config.json`` of a saved model folder: an object with ``lstmkit_version``
    (checked: this major version or an older one), ``kind`` and ``config``.

    A missing folder, a file, a folder without config.json, unreadable JSON, a
    config.json lstmkit did not write or a newer version raise one `LstmkitError` line.
    """
    path = Path(path)
    recover_dir(path)
    if not path.exists():
        raise LstmkitError(f"model folder {path} does not exist; pass a folder saved by lstmkit")
    if not path.is_dir():
        raise LstmkitError(f"{path} is a file; pass the model folder saved by lstmkit")
    where = path / CONFIG_FILE
    try:
        meta = json.loads(where.read_text())
    except OSError:
        raise LstmkitError(
            f"{path} is not an lstmkit model directory (no {CONFIG_FILE}); "
            "pass a folder saved by lstmkit"
        ) from None
    except ValueError as err:
        raise LstmkitError(f"{where} is not valid JSON ({err}); save again") from None
    if not isinstance(meta, dict) or not {"lstmkit_version", "kind", "config"} <= meta.keys():
        raise LstmkitError(
            f"{where} lacks lstmkit_version/kind/config; it was not written by lstmkit"
        )
    if not isinstance(meta["kind"], str):
        raise LstmkitError(f"{where} is damaged (kind {meta['kind']!r} is not a name); save again")
    check_version(meta["lstmkit_version"], str(path), "save the model again")
    return meta


def _model_kind(path: Path) -> str | None:
    """The ``kind`` recorded in ``path/config.json``, or None if it is no lstmkit model."""
    try:
        meta = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(meta, dict) and "lstmkit_version" in meta and "kind" in meta:
        return str(meta["kind"])
    return None


def check_model_target(path: str | os.PathLike[str], kind: str) -> Path:
    """Check that a ``kind`` model may be saved at ``path``, before any training.

    ``path`` may be new, an empty folder or an lstmkit model folder of the same
    kind. A file, a folder with other content or a model of another kind (a text
    classifier where a forecaster would go, or the reverse) raises `LstmkitError`.
    """
    path = Path(path)
    recover_dir(path)
    if path.exists() and not path.is_dir():
        raise LstmkitError(f"cannot save the model to {path}: a file with that name exists")
    if not path.is_dir() or not any(path.iterdir()):
        return path
    found = _model_kind(path)
    if found is None:
        raise LstmkitError(
            f"cannot save the model to {path}: the folder exists and is not an lstmkit "
            "model directory; choose an empty or new folder"
        )
    if found != kind:
        raise LstmkitError(
            f"cannot save a {kind!r} model to {path}: it holds a {found!r} model, which "
            "would be lost; choose another folder or delete it first"
        )
    return path


def save_model_dir(
    path: str | os.PathLike[str],
    *,
    kind: str,
    config: dict,
    state_dict: Mapping[str, torch.Tensor],
    extras: Mapping[str, str | bytes] | None = None,
    folders: Mapping[str, str | os.PathLike[str]] | None = None,
) -> Path:
    """Write a model directory at ``path`` atomically and return its path.

    Args:
        path: target directory. If it exists it must be an empty folder or an
            lstmkit model directory of the same ``kind`` (see `check_model_target`);
            it is replaced in one recoverable swap after the new one is complete.
        kind: what the model is (``"forecaster"``, ``"text_classifier"``); checked on load.
        config: JSON-serialisable configuration needed to rebuild the model.
        state_dict: tensors to store in ``model.safetensors``.
        extras: more files to write, name -> text or bytes (e.g. ``"scaler.json"``).
        folders: folders to copy in, name inside the model directory -> existing
            folder (e.g. ``{"logs": <training logs>}``).
    """
    path = Path(path)
    extras = dict(extras or {})
    folders = dict(folders or {})
    for name in [*extras, *folders]:
        if name in (CONFIG_FILE, WEIGHTS_FILE) or "/" in name or name.startswith("."):
            raise LstmkitError(f"extra file name {name!r} is reserved or not a plain file name")
    check_model_target(path, kind)
    try:
        meta_text = json.dumps(
            {"lstmkit_version": __version__, "kind": kind, "config": config}, indent=2
        )
    except TypeError as err:
        raise TypeError(f"model config is not JSON-serialisable: {err}") from err
    from safetensors.torch import save_file

    with staged_dir(path) as tmp:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        follow_umask(tmp / WEIGHTS_FILE)  # safetensors writes 0600; the umask decides
        for name, content in extras.items():
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            (tmp / name).write_bytes(data)
        for name, source in folders.items():
            shutil.copytree(source, tmp / name)
        # config.json last: its presence marks a complete directory; it lists the digest
        # of every other file, checked on load
        meta = {**json.loads(meta_text), FILES_KEY: file_digests(tmp)}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return path


@dataclass
class SavedModel:
    """A loaded model directory: its config, weights and access to its extra files."""

    config: dict
    state_dict: dict[str, torch.Tensor]
    path: Path
    version: str
    kind: str = ""

    def read_bytes(self, name: str) -> bytes:
        """Contents of extra file ``name``; a missing file raises `LstmkitError`."""
        try:
            return (self.path / name).read_bytes()
        except OSError:
            raise LstmkitError(
                f"model directory {self.path} has no {name}; it is incomplete, save the model again"
            ) from None

    def read_text(self, name: str) -> str:
        """Contents of extra file ``name`` as UTF-8 text."""
        return self.read_bytes(name).decode("utf-8")


def load_model_dir(path: str | os.PathLike[str], kind: str) -> SavedModel:
    """Read a model directory written by `save_model_dir` and check its kind and version
    (`read_model_meta`) and the digests of its files (`check_file_digests`)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_model_meta(path)
    version = meta["lstmkit_version"]
    if meta["kind"] != kind:
        raise LstmkitError(
            f"{path} holds a {meta['kind']!r} model, expected a {kind!r} model; "
            "pass the right model directory"
        )
    check_file_digests(path, meta)
    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except FileNotFoundError:
        raise LstmkitError(
            f"{path} has no {WEIGHTS_FILE}; the model directory is incomplete"
        ) from None
    except (SafetensorError, OSError, ValueError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LstmkitError(
            f"cannot read {path / WEIGHTS_FILE} ({msg}); save the model again"
        ) from None
    return SavedModel(
        config=meta["config"],
        state_dict=state,
        path=path,
        version=version,
        kind=meta["kind"],
    )

"""Content identities: what a result was made from, so that a resume never reuses old work.

A resumable result (a checkpoint series, a partial prediction store, an extraction work
directory) records the identity of its *recipe*: the settings that change its content and the
identities of its inputs by content, never by path. A rerun compares them before resuming.

* :func:`file_identity`: sha256 of a file's bytes (checkpoints; cached per (path, size,
  mtime) within a process).
* :func:`store_identity`: a zarr store's creation id (written by ``synful convert`` and
  ``synful predict`` into the root ``synful`` attribute) plus the metadata of its arrays
  (shape, chunks, dtype, attributes): every write of a store gets a new id, and the metadata
  catches a store edited in place. Chunk data is not read (a store can be terabytes).
* :func:`recipe_identity`: sha256 of a JSON-able mapping in canonical form.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from functools import lru_cache
from pathlib import Path

from .errors import SynfulError

CHUNK = 1 << 20
CREATION_ID = "creation_id"


def new_creation_id() -> str:
    """A fresh id for a store being written (stored in its ``synful`` attribute)."""
    return uuid.uuid4().hex


def recipe_identity(recipe) -> str:
    """sha256 of ``recipe`` (JSON-able) in canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_identity(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes.

    Raises:
        SynfulError: the file cannot be read.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise SynfulError(path, f"cannot read ({exc.strerror or exc})") from None
    return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def store_identity(path: str | os.PathLike, *nodes: str) -> str:
    """The identity of a zarr store: its creation id and the metadata of its nodes (all, or
    only ``nodes``, e.g. ``"raw"`` for what a prediction reads).

    Raises:
        SynfulError: ``path`` is not a zarr store, or a named node is missing.
    """
    path = Path(path)
    roots = [path / node for node in nodes] if nodes else [path]
    documents = []
    for root in roots:
        found = _metadata_documents(root)
        if not found:
            raise SynfulError(root, "not a zarr store or array")
        documents += found
    metadata = {"creation_id": creation_id_of(path)}
    for document in documents:
        try:
            metadata[document.relative_to(path).as_posix()] = json.loads(document.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SynfulError(document, f"unreadable zarr metadata ({exc})") from None
    return recipe_identity(metadata)


METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def _metadata_documents(root: Path) -> list[Path]:
    """The metadata files of a zarr node and, for a group, of its members: arrays are not
    descended into, so chunk files are never listed (a store can hold millions)."""
    documents = [root / name for name in METADATA if (root / name).is_file()]
    if not documents or any(d.name in ("zarr.json", ".zarray") and _is_array(d) for d in documents):
        return documents
    try:
        children = sorted(entry for entry in root.iterdir() if entry.is_dir())
    except OSError:
        return documents
    for child in children:
        documents += _metadata_documents(child)
    return documents


def _is_array(document: Path) -> bool:
    if document.name == ".zarray":
        return True
    try:
        return json.loads(document.read_text()).get("node_type") == "array"
    except (OSError, json.JSONDecodeError):
        return False


def creation_id_of(path: str | os.PathLike) -> str | None:
    """The creation id recorded in a store's root ``synful`` attribute, if any."""
    try:
        root = json.loads((Path(path) / "zarr.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    mark = (root.get("attributes") or {}).get("synful") or {}
    return mark.get(CREATION_ID) if isinstance(mark, dict) else None

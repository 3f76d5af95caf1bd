"""The done store of a blockwise task: one byte per block in one memory-mapped file.

Layout of a done directory (a handful of files, whatever the number of blocks)::

    <done_dir>/identity.json     the task's geometry and the caller's recipe (see below)
    <done_dir>/done/zarr.json    a zarr v3 uint8 array of one chunk, one byte per block id
    <done_dir>/done/c/0          the chunk itself: byte ``i`` is 1 once block ``i`` is done

The array opens with ``zarr.open_array(<done_dir>/done)`` for inspection; synful maps the
chunk file with ``numpy.memmap``. Only the process that runs the task (the dask client, or
the serial loop) writes it, after a block's function has returned on its worker, so there is
one writer and no per-block file. A byte stored in the map is in the page cache at once: a
run killed with ``kill -9`` loses none of it (the map is flushed to disk every few seconds
and at the end, for a crash of the machine). A rerun reads the whole store in milliseconds
per million blocks.

Identity: ``identity.json`` holds ``{"task": BlockwiseTask.to_dict(), "recipe": {...}}``,
where the recipe is what the caller says determines the blocks' content (e.g. the digest of
a checkpoint file and of the input store's metadata, and the settings). Done bytes are reused
only for the same task and recipe; otherwise :meth:`DoneMarkers.bind` raises a one-line error
naming what differs, unless ``restart=True`` (start fresh). A directory that is not a done
directory (a symbolic link, or other files without ``identity.json``) is never used nor
removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..atomic import TMP_MARK, atomic_output, remove_path, sweep_directory, sweep_temporaries
from ..errors import SynfulError
from .task import Block, BlockwiseTask

IDENTITY_FILE = "identity.json"
DONE_ARRAY = "done"
CHUNK_PATH = ("c", "0")
FORMAT = "synful-blockwise-done"
VERSION = 2
#: files of a done directory from synful versions before the done store (one file per block)
OLD_TASK_FILE = "task.json"


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def _array_metadata(num_blocks: int) -> dict:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [num_blocks],
        "data_type": "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [num_blocks]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes"}],
        "attributes": {"synful": {"kind": "blockwise_done", "version": VERSION}},
        "dimension_names": ["block_id"],
    }


def identity_of(task: BlockwiseTask, recipe: dict | None) -> dict:
    """The JSON form of a task and a recipe, as stored in ``identity.json``."""
    return json.loads(json.dumps(
        {"format": FORMAT, "version": VERSION, "task": task.to_dict(), "recipe": recipe or {}},
        sort_keys=True, default=str,
    ))  # fmt: skip


def differences(stored: dict, wanted: dict) -> list[str]:
    """Names of what differs between two identities (task keys, then recipe keys)."""
    if stored.get("format") != FORMAT or stored.get("version") != VERSION:
        return ["format (written by another synful version)"]
    names = []
    for part in ("task", "recipe"):
        a, b = stored.get(part) or {}, wanted.get(part) or {}
        names += [key for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return names


def _write_store(directory: Path, identity: dict, num_blocks: int) -> None:
    chunk = directory / DONE_ARRAY / Path(*CHUNK_PATH)
    chunk.parent.mkdir(parents=True)
    (directory / DONE_ARRAY / "zarr.json").write_text(
        json.dumps(_array_metadata(num_blocks), indent=1)
    )
    with open(chunk, "wb") as f:
        f.truncate(num_blocks)  # sparse: zeros cost no disk until written
    (directory / IDENTITY_FILE).write_text(json.dumps(identity, indent=1, sort_keys=True))


class DoneMarkers:
    """The done store of one task in ``done_dir``.

    Args:
        done_dir: the done directory (created by :meth:`bind`).
    """

    def __init__(self, done_dir: str | os.PathLike):
        self.done_dir = Path(done_dir)
        self.chunk_path = self.done_dir / DONE_ARRAY / Path(*CHUNK_PATH)
        self._map: np.memmap | None = None

    # --- identity -------------------------------------------------------------------------

    def identity(self) -> dict | None:
        """The stored identity, or None when there is none (or it is unreadable)."""
        try:
            value = json.loads((self.done_dir / IDENTITY_FILE).read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def bind(
        self, task: BlockwiseTask, recipe: dict | None = None, *, restart: bool = False
    ) -> int:
        """Create the done store for ``task`` and ``recipe``, or check that the existing one
        belongs to them (resume).

        Args:
            task: the task whose blocks are tracked here.
            recipe: JSON-able identity of what the blocks are made from (inputs by content,
                settings); done bytes of another task or recipe are never reused.
            restart: discard an existing store of another task or recipe (and start fresh)
                instead of raising.

        Returns:
            the number of blocks already done.

        Raises:
            SynfulError: ``done_dir`` is not a done directory, or holds the done blocks of
                another task or recipe (and ``restart`` is false): one line naming what
                differs.
        """
        self.close()
        wanted = identity_of(task, recipe)
        self._check_ours()
        if self.done_dir.exists():
            stored = self.identity()
            differ = (
                ["format (written by another synful version)"]
                if stored is None
                else (differences(stored, wanted))
            )
            if not differ and self._chunk_size() != task.num_blocks:
                differ = ["done store size"]
            if differ and not restart:
                raise SynfulError(
                    self.done_dir,
                    f"holds done blocks of another run ({', '.join(differ)} differ); rerun "
                    "with --restart to start fresh",
                )
            if differ:
                self.clear()
        if not self.done_dir.exists():
            self._create(wanted, task.num_blocks)
        return self.count()

    def _create(self, identity: dict, num_blocks: int) -> None:
        """Create the directory atomically: it appears with its identity and store, or not."""
        with atomic_output(self.done_dir) as building:
            building.mkdir()
            _write_store(building, identity, num_blocks)

    def initialise(self, task: BlockwiseTask, recipe: dict | None = None) -> None:
        """Write a new done store into ``done_dir``, a directory being built by the caller
        (not yet visible under its final name: the caller renames it into place)."""
        self.done_dir.mkdir(parents=True, exist_ok=True)
        _write_store(self.done_dir, identity_of(task, recipe), task.num_blocks)

    def _check_ours(self) -> None:
        """Raise unless ``done_dir`` is absent, a done directory (also an old one), or empty
        (temporary files of a killed run aside)."""
        if self.done_dir.is_symlink():
            raise SynfulError(self.done_dir, "is a symbolic link, not a done-marker directory")
        if not self.done_dir.exists():
            return
        if self.done_dir.is_dir() and any(
            (self.done_dir / name).is_file() for name in (IDENTITY_FILE, OLD_TASK_FILE)
        ):
            return
        if not self.done_dir.is_dir() or any(
            not _is_temporary(p.name) for p in self.done_dir.iterdir()
        ):
            raise SynfulError(
                self.done_dir,
                "is not a done-marker directory (no identity.json); not using or removing it",
            )

    def sweep(self) -> None:
        """Remove temporary files a killed run left beside and inside the directory (call only
        while no other run uses it)."""
        sweep_temporaries(self.done_dir)
        sweep_directory(self.done_dir)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``done_dir``'s lock (a second run on it fails at once naming the holder) and
        sweep what a killed run left."""
        from ..outputs import output_lock

        with output_lock(self.done_dir):
            self.sweep()
            yield

    # --- the bytes ------------------------------------------------------------------------

    def _chunk_size(self) -> int | None:
        try:
            return self.chunk_path.stat().st_size
        except OSError:
            return None

    def view(self) -> np.ndarray:
        """The done bytes (a writable memory map; empty for a task of no blocks)."""
        if self._map is None:
            if not self.chunk_path.is_file():
                raise SynfulError(self.done_dir, "has no done store (call bind first)")
            self._map = np.memmap(self.chunk_path, dtype=np.uint8, mode="r+")
        return self._map

    def flush(self) -> None:
        if self._map is not None:
            self._map.flush()

    def close(self) -> None:
        if self._map is not None:
            self._map.flush()
            self._map = None

    def count(self) -> int:
        """Blocks marked done."""
        return int(np.count_nonzero(self.view()))

    def is_done(self, block_id: int) -> bool:
        return bool(self.view()[int(block_id)])

    def done_ids(self) -> set[int]:
        """Ids of all blocks marked done (for tests and small tasks)."""
        if not self.chunk_path.is_file():
            return set()
        return set(np.flatnonzero(self.view()).tolist())

    def todo(self, start: int = 0, chunk: int = 1 << 16) -> Iterator[np.ndarray]:
        """Ids (int64 arrays, ascending) of the blocks not done, from ``start`` on, read a
        ``chunk`` of bytes at a time (never all ids at once)."""
        view = self.view()
        for begin in range(start, len(view), chunk):
            ids = np.flatnonzero(view[begin : begin + chunk] == 0)
            if len(ids):
                yield ids + begin

    def mark(self, ids) -> None:
        """Mark blocks done (ids: an int, a ``range``, an array or a :class:`Block`); call only
        after their data is written."""
        if isinstance(ids, Block):
            ids = ids.block_id
        view = self.view()
        if isinstance(ids, range) and ids.step == 1:
            view[ids.start : ids.stop] = 1
        else:
            view[np.asarray(ids, dtype=np.int64)] = 1

    def unmark(self, ids) -> None:
        """Mark blocks as not done (they are redone by the next run)."""
        if isinstance(ids, Block):
            ids = ids.block_id
        self.view()[np.asarray(ids, dtype=np.int64)] = 0

    def is_complete(self) -> bool:
        """Whether every block is done."""
        return self.chunk_path.is_file() and bool(np.all(self.view()))

    def clear(self) -> None:
        """Remove the done directory (start over); refuses one that is not a done directory."""
        self._check_ours()
        self.close()
        remove_path(self.done_dir)

"""May synful write (and replace) this output? One owner for that question.

Every command claims its outputs before any work (:func:`claim`):

* an output path is never a symbolic link (a link is not followed into replacement);
* it is not an input of the command, contains none, and lies inside no input directory
  (real paths, symlinks resolved), and no two outputs overlap;
* when it exists it must be a thing of the same *kind* that synful wrote (an empty directory
  also passes for the directory kinds); anything else is refused with a one-line
  :class:`~synful.errors.SynfulError` naming it, and nothing is touched.

How the kinds are marked when synful writes them:

=================  ==================================================================
kind               mark
=================  ==================================================================
sample             zarr root attribute ``synful: {"kind": "sample", "version": 1}``
predictions        zarr root attribute ``synful: {"kind": "predictions", ...}`` (or,
                   from older versions, a ``synful_predict`` attribute)
mask               zarr array attribute ``synful: {"kind": "mask", ...}`` (older:
                   a uint8 zarr array)
synapse_table      Parquet schema metadata ``synful`` = ``{"kind": "synapse_table"}``
                   (older: a Parquet file with the table's columns); CSV: its header
synthetic_sample   HDF5 root attribute ``synful`` = ``{"kind": "synthetic_sample"}``
cremi_submission   HDF5 root attribute ``synful`` = ``{"kind": "cremi_submission"}``
training           ``.synful.json`` in the directory (older: only checkpoints, the log
                   and snapshots inside)
snapshot           a zarr group with an integer ``iteration`` attribute and ``raw``
                   (a training snapshot, ``snapshots/batch_<it>.zarr``)
extract_work       ``identity.json`` in the directory
file               none: a plain regular file (metrics JSON/CSV, plots, summaries)
=================  ==================================================================

While claimed, each output is locked (``fcntl.flock`` on a hidden ``.<name>.lock`` sibling
holding the pid and host), so a second run on the same output fails at once naming the
holder; the lock file is removed on release (a killed run's lock is free again, its file is
reused). Right after locking, the temporary siblings (``.<name>.tmp-*``) that a killed run
left behind are swept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .atomic import sweep_directory, sweep_temporaries
from .errors import SynfulError

logger = logging.getLogger(__name__)

VERSION = 1
MARK_KEY = "synful"
DIRECTORY_MARK = ".synful.json"

SAMPLE = "sample"
PREDICTIONS = "predictions"
MASK = "mask"
SYNAPSE_TABLE = "synapse_table"
SYNTHETIC_SAMPLE = "synthetic_sample"
CREMI_SUBMISSION = "cremi_submission"
TRAINING = "training"
EXTRACT_WORK = "extract_work"
SNAPSHOT = "snapshot"
FILE = "file"

#: what each kind is called in error messages
DESCRIPTIONS = {
    SAMPLE: "a sample store",
    PREDICTIONS: "a prediction store",
    MASK: "a mask array",
    SYNAPSE_TABLE: "a synapse table",
    SYNTHETIC_SAMPLE: "a synthetic sample (synful synthesize)",
    CREMI_SUBMISSION: "a CREMI submission file (synful export)",
    TRAINING: "a training directory",
    EXTRACT_WORK: "an extraction work directory",
    SNAPSHOT: "a training snapshot",
    FILE: "a regular file",
}
DIRECTORY_KINDS = {SAMPLE, PREDICTIONS, MASK, TRAINING, EXTRACT_WORK, SNAPSHOT}
REQUIRED_TABLE_COLUMNS = ("id", "pre_z", "pre_y", "pre_x", "post_z", "post_y", "post_x")
TRAINING_ENTRY = re.compile(r"checkpoint_\d+\.pt|training_log\.csv|snapshots|\..*\.tmp(-.*)?")


def mark(kind: str, **extra) -> dict:
    """The ``synful`` attribute to store with an output of ``kind``."""
    return {"kind": kind, "version": VERSION, **extra}


def mark_json(kind: str) -> str:
    return json.dumps(mark(kind))


def mark_directory(path: str | os.PathLike, kind: str) -> None:
    """Mark a plain directory (not a zarr store) as synful's ``kind``."""
    target = Path(path) / DIRECTORY_MARK
    if not target.exists():
        target.write_text(mark_json(kind) + "\n")


def mark_hdf5(path: str | os.PathLike, kind: str) -> None:
    """Mark an HDF5 file (before it is renamed into place) as synful's ``kind``."""
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs[MARK_KEY] = mark_json(kind)


# --- recognising kinds ---------------------------------------------------------------------


def _zarr_node(path: Path) -> dict | None:
    try:
        node = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    return node if isinstance(node, dict) else None


def _mark_kind(value) -> str | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, bytes):
        return _mark_kind(value.decode("utf-8", "replace"))
    return value.get("kind") if isinstance(value, dict) else None


def _zarr_kind(path: Path) -> str | None:
    node = _zarr_node(path)
    if node is None:
        return None
    attributes = node.get("attributes") or {}
    kind = _mark_kind(attributes.get(MARK_KEY))
    if kind is None and "synful_predict" in attributes:
        return PREDICTIONS
    if (
        kind is None
        and node.get("node_type") == "group"
        and isinstance(attributes.get("iteration"), int)
        and (path / "raw" / "zarr.json").is_file()
    ):
        return SNAPSHOT
    if kind is None and node.get("node_type") == "array" and node.get("data_type") == "uint8":
        return MASK  # masks written before the mark
    return kind


def _is_synapse_table(path: Path) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    if path.suffix.lower() == ".csv":
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                header = f.readline().strip().split(",")
        except OSError:
            return False
        return all(c in header for c in REQUIRED_TABLE_COLUMNS)
    try:
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
    except Exception:
        return False
    if _mark_kind((schema.metadata or {}).get(MARK_KEY.encode())) == SYNAPSE_TABLE:
        return True
    return all(c in schema.names for c in REQUIRED_TABLE_COLUMNS)  # tables before the mark


def _hdf5_kind(path: Path) -> str | None:
    if not path.is_file() or path.is_symlink():
        return None
    try:
        import h5py

        if not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r") as f:
            return _mark_kind(f.attrs.get(MARK_KEY))
    except Exception:
        return None


def _is_training_directory(path: Path) -> bool:
    try:
        if _mark_kind((path / DIRECTORY_MARK).read_text()) == TRAINING:
            return True
    except OSError:
        pass
    names = [e.name for e in os.scandir(path)]
    return bool(names) and all(TRAINING_ENTRY.fullmatch(n) for n in names)


def _is_extract_work(path: Path) -> bool:
    try:
        return isinstance(json.loads((path / "identity.json").read_text()), dict)
    except (OSError, ValueError):
        return False


def is_kind(path: str | os.PathLike, kind: str) -> bool:
    """Whether the existing ``path`` is an output of ``kind`` that synful wrote (never true
    for a symbolic link)."""
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return False
    if kind in DIRECTORY_KINDS:
        if not path.is_dir():
            return False
        if kind == TRAINING:
            return _is_training_directory(path)
        if kind == EXTRACT_WORK:
            return _is_extract_work(path)
        return _zarr_kind(path) == kind
    if not path.is_file():
        return False
    if kind == SYNAPSE_TABLE:
        return _is_synapse_table(path)
    if kind in (SYNTHETIC_SAMPLE, CREMI_SUBMISSION):
        return _hdf5_kind(path) == kind
    if kind == FILE:
        return True
    raise ValueError(f"unknown output kind {kind!r}")


def infer_kind(path: str | os.PathLike) -> str | None:
    """The kind of a directory synful has just written, from its marks (None: unknown)."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return None
    return _zarr_kind(path)


def _is_empty_directory(path: Path) -> bool:
    if not path.is_dir() or path.is_symlink():
        return False
    with os.scandir(path) as entries:
        return next(entries, None) is None


def refuse_unless_kind(path: str | os.PathLike, kind: str | None) -> None:
    """Raise unless the existing ``path`` may be replaced as an output of ``kind``."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        raise SynfulError(
            path, "is a symbolic link; synful does not replace links (give the real path)"
        )
    if kind is not None and is_kind(path, kind):
        return
    directory_kind = kind in DIRECTORY_KINDS
    if directory_kind and _is_empty_directory(path):
        return
    what = DESCRIPTIONS.get(kind, "an output") if kind is not None else "an output"
    if path.is_dir():
        if directory_kind:
            problem = f"is a directory that synful did not write as {what}; not replacing it"
        else:
            problem = f"is a directory, not {what}; not replacing it"
    else:
        problem = f"exists and is not {what} written by synful; not replacing it"
    raise SynfulError(path, problem + " (remove it yourself or choose another path)")


# --- checking paths --------------------------------------------------------------------------


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def check_output(
    path: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """Raise :class:`SynfulError` unless synful may write ``path`` as an output of ``kind``.

    Refused: a symbolic link; a path whose parent is a file; a path that is an input, contains
    one, or lies inside an input directory; an existing path that is not of ``kind`` (see the
    module docstring). Returns ``path``.
    """
    path = Path(path)
    if kind not in DESCRIPTIONS:
        raise ValueError(f"unknown output kind {kind!r}")
    if path.is_symlink():
        raise SynfulError(
            path,
            "is a symbolic link; synful does not write outputs through links (give the real path)",
        )
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise SynfulError(
            path, f"cannot create the output directory: {blocking} is not a directory"
        )
    real = _real(path)
    for item in inputs:
        if item is None:
            continue
        source = _real(item)
        if source == real:
            raise SynfulError(path, "is an input of this command; not replacing it")
        if real in source.parents:
            raise SynfulError(path, f"contains the input {item}; not replacing it")
        if source in real.parents and source.is_dir():
            raise SynfulError(path, f"lies inside the input {item}; not writing into it")
    refuse_unless_kind(path, kind)
    return path


# --- locks ----------------------------------------------------------------------------------

_held: dict[str, list] = {}  # lock path -> [fd, depth]


def lock_path(path: str | os.PathLike) -> Path:
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 400).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "an unknown process"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (reentrant in one process); yields True when this
    call took the lock (False when this process held it already).

    Raises:
        SynfulError: another process holds it; the message names its pid and host.
    """
    import fcntl

    lock = lock_path(path)
    key = str(lock)
    if key in _held:
        _held[key][1] += 1
        try:
            yield False
        finally:
            _held[key][1] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _holder(fd)
                os.close(fd)
                raise SynfulError(
                    path, f"is being written by another synful run ({holder}); wait for it to end"
                ) from None
            os.close(fd)  # no flock on this file system: go on unlocked
            logger.warning("%s: cannot lock (%s); running without a lock", path, exc)
            yield True
            return
        try:  # the file may have been removed by the previous holder meanwhile: lock the new one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
    _held[key] = [fd, 0]
    try:
        yield True
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


# --- claiming outputs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """An output (or work directory) of a command.

    Args:
        path: where it goes.
        kind: what it is (one of :data:`DESCRIPTIONS`).
        lock: take a lock on it (work directories are covered by their output's lock).
        sweep: subdirectories (relative) whose temporary entries a killed run may have left.
    """

    path: Path
    kind: str
    lock: bool = True
    sweep: tuple[str, ...] = ()


def output(path, kind: str, *, lock: bool = True, sweep: Sequence[str] = ()) -> Output:
    return Output(Path(path), kind, lock, tuple(sweep))


def _check_overlap(outputs: Sequence[Output]) -> None:
    reals = [(o, _real(o.path)) for o in outputs]
    for i, (a, ra) in enumerate(reals):
        for b, rb in reals[i + 1 :]:
            if ra == rb:
                raise SynfulError(b.path, f"is also the output {a.path}; give two different paths")
            if ra in rb.parents or rb in ra.parents:
                inner, outer = (b, a) if ra in rb.parents else (a, b)
                raise SynfulError(inner.path, f"lies inside the output {outer.path}")


@contextlib.contextmanager
def claim(
    outputs: Sequence[Output], inputs: Iterable[str | os.PathLike | None] = ()
) -> Iterator[None]:
    """Check, lock and clean up after killed runs: call before any work of a command.

    Each output is checked (:func:`check_output`) against the inputs and the others, locked
    (:func:`output_lock`) and, when this call took the lock, its temporary siblings and the
    temporary entries of its ``sweep`` subdirectories are removed.
    """
    inputs = [i for i in inputs if i is not None]
    outputs = list(outputs)
    for item in outputs:
        check_output(item.path, item.kind, inputs)
    _check_overlap(outputs)
    with contextlib.ExitStack() as stack:
        fresh = True
        for item in sorted((o for o in outputs if o.lock), key=lambda o: str(_real(o.path))):
            fresh = stack.enter_context(output_lock(item.path)) and fresh
        if fresh:
            for item in outputs:
                swept = sweep_temporaries(item.path)
                for sub in item.sweep:
                    swept += sweep_directory(item.path / sub)
                if swept:
                    logger.info("removed %d temporary files of an interrupted run", len(swept))
        yield

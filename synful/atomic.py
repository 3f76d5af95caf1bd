"""Outputs that appear only when complete: write to a hidden sibling, then rename.

Temporary siblings are named ``.<name>.tmp-<hex>`` (:func:`temporary_sibling`), so that a
later run of the same output can recognise and sweep those a killed run left behind
(:func:`sweep_temporaries`, called under the output's lock by :mod:`synful.outputs`).
An existing directory is replaced only when :mod:`synful.outputs` recognises it as a store of
the expected kind; the replacement is one atomic exchange of the two directories where the
file system supports it (Linux ``renameat2(RENAME_EXCHANGE)``), so a crash never leaves the
output missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

TMP_MARK = ".tmp-"


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file or a directory tree if it exists (a symlink itself, never its target)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def settle_background_writes(timeout: float = 10.0) -> None:
    """Wait (at most ``timeout`` s) until zarr's I/O thread has no task left.

    zarr runs every read and write as tasks on its own event loop; when an exception (or
    SIGTERM) interrupts the thread that waits for them, they go on writing chunks. Call this
    before removing a store they may still write into, or they recreate parts of it.
    """
    sync = sys.modules.get("zarr.core.sync")
    loop = getattr(sync, "loop", [None])[0] if sync is not None else None
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def drain():
        me = asyncio.current_task()
        while others := [t for t in asyncio.all_tasks() if t is not me and not t.done()]:
            await asyncio.wait(others)

    future = asyncio.run_coroutine_threadsafe(drain(), loop)
    try:
        future.result(timeout)
    except BaseException:  # clean-up must not raise
        future.cancel()


def discard(path: str | os.PathLike) -> None:
    """Remove a temporary output after a failure; never raises (a leftover is swept later)."""
    try:
        settle_background_writes()
        remove_path(path)
    except OSError as exc:
        logger.warning("%s: could not remove (%s); the next run removes it", path, exc)


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden path next to ``path`` (same file system, so renaming is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")


def temporary_siblings(path: str | os.PathLike) -> list[Path]:
    """The temporary siblings of ``path`` that exist now (from this or an earlier run)."""
    path = Path(path)
    prefix = f".{path.name}{TMP_MARK}"
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    return [path.parent / e.name for e in entries if e.name.startswith(prefix)]


def sweep_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``path``; call only while no other run writes ``path``
    (i.e. under its lock). Returns what was removed."""
    removed = []
    for tmp in temporary_siblings(path):
        with contextlib.suppress(FileNotFoundError):
            remove_path(tmp)
            removed.append(tmp)
    return removed


def sweep_directory(directory: str | os.PathLike) -> list[Path]:
    """Remove every temporary (``.<name>.tmp-<hex>``) entry directly inside ``directory``."""
    directory = Path(directory)
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    removed = []
    for e in entries:
        if e.name.startswith(".") and TMP_MARK in e.name:
            with contextlib.suppress(FileNotFoundError):
                remove_path(directory / e.name)
                removed.append(directory / e.name)
    return removed


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_path(
    source: str | os.PathLike, target: str | os.PathLike, kind: str | None = None
) -> None:
    """Rename ``source`` to ``target``, replacing what is there.

    With ``kind``, an existing ``target`` must be a synful output of that kind
    (:func:`synful.outputs.refuse_unless_kind`: never a link). Without it, an existing file or
    symlink is replaced (a link itself, never followed), and a directory only when it is of
    the kind that ``source`` is marked as (:func:`synful.outputs.infer_kind`). A refusal
    raises :class:`~synful.errors.SynfulError` and touches nothing. The directory swap is
    atomic where the system allows.
    """
    source, target = Path(source), Path(target)
    is_directory = target.is_dir() and not target.is_symlink()
    if os.path.lexists(target) and (kind is not None or is_directory):
        from .outputs import infer_kind, refuse_unless_kind

        refuse_unless_kind(target, kind if kind is not None else infer_kind(source))
    if is_directory:
        if _exchange(source, target):
            remove_path(source)  # now the old directory
            return
        old = temporary_sibling(target)
        os.replace(target, old)
        os.replace(source, target)
        remove_path(old)
    else:
        os.replace(source, target)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``.

    On any exception (also an interrupt or SIGTERM) the temporary file or directory is
    removed and ``path`` is left untouched, so a failed step never leaves a result that looks
    complete. An existing directory at ``path`` is replaced only when it is a synful store of
    ``kind`` (see :func:`replace_path`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"{path}: nothing was written")
        replace_path(tmp, path, kind)
    except BaseException:
        discard(tmp)
        raise

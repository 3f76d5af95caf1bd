"""Done markers on disk: one small file per finished block, no database.

Layout of a marker directory::

    <done_dir>/task.json        the task's description (BlockwiseTask.to_dict) and a user tag
    <done_dir>/blocks/<id>      one JSON file per finished block (write ROI, seconds, host)
    <done_dir>/complete         written once every block of the task is done

A marker is created with an atomic rename, after the block function has returned (so after
its data is written); a block whose marker exists is skipped on a rerun. The directory must
be on a file system that every worker sees. A directory that is not a marker directory (a
symbolic link, or files without ``task.json``) is never used nor removed.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..atomic import TMP_MARK, remove_path, temporary_sibling
from ..errors import SynfulError
from .task import Block, BlockwiseTask

TASK_FILE = "task.json"
BLOCKS_DIR = "blocks"
COMPLETE_FILE = "complete"


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def _write_atomic(path: Path, text: str) -> None:
    tmp = temporary_sibling(path)
    tmp.write_text(text)
    os.replace(tmp, path)


class DoneMarkers:
    """The done markers of one task in ``done_dir``.

    Args:
        done_dir: the marker directory (created on :meth:`bind`).
    """

    def __init__(self, done_dir: str | os.PathLike):
        self.done_dir = Path(done_dir)
        self.blocks_dir = self.done_dir / BLOCKS_DIR

    def bind(self, task: BlockwiseTask, tag: dict | None = None) -> None:
        """Create the directory for ``task``, or check that existing markers belong to it.

        Args:
            task: the task whose blocks are marked here.
            tag: extra JSON-able identity (e.g. the checkpoint and output names); markers
                written for a different task or tag are an error, never silently reused.
        """
        description = {"task": task.to_dict(), "tag": tag or {}}
        task_file = self.done_dir / TASK_FILE
        self._check_ours()
        if task_file.exists():
            try:
                existing = json.loads(task_file.read_text())
            except (OSError, json.JSONDecodeError):
                existing = None
            if existing != json.loads(json.dumps(description)):
                raise SynfulError(
                    self.done_dir,
                    "done markers belong to a different task (other ROI, blocks or inputs); "
                    "remove the directory to start over",
                )
        else:
            self.done_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(task_file, json.dumps(description, indent=1))
        self.blocks_dir.mkdir(parents=True, exist_ok=True)

    def _check_ours(self) -> None:
        """Raise unless ``done_dir`` is absent, a marker directory or empty (temporary files
        of a killed run aside)."""
        if self.done_dir.is_symlink():
            raise SynfulError(self.done_dir, "is a symbolic link, not a done-marker directory")
        if not self.done_dir.exists() or (self.done_dir / TASK_FILE).is_file():
            return
        if not self.done_dir.is_dir() or any(
            not _is_temporary(p.name) for p in self.done_dir.iterdir()
        ):
            raise SynfulError(
                self.done_dir,
                "is not a done-marker directory (no task.json); not using or removing it",
            )

    def marker_path(self, block_id: int) -> Path:
        return self.blocks_dir / str(int(block_id))

    def is_done(self, block_id: int) -> bool:
        return self.marker_path(block_id).exists()

    def done_ids(self) -> set[int]:
        """Ids of all blocks marked done."""
        if not self.blocks_dir.is_dir():
            return set()
        return {int(p.name) for p in self.blocks_dir.iterdir() if p.name.isdigit()}

    def mark_done(self, block: Block, seconds: float | None = None) -> None:
        """Mark ``block`` done; call only after the block's data is written."""
        info = {
            "block_id": block.block_id,
            "index": list(block.index),
            "write_roi": {"offset": list(block.write_roi.begin), "shape": list(block.write_roi.shape)},
            "seconds": seconds,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        _write_atomic(self.marker_path(block.block_id), json.dumps(info))

    def is_complete(self) -> bool:
        return (self.done_dir / COMPLETE_FILE).exists()

    def mark_complete(self, task: BlockwiseTask) -> None:
        """Write the ``complete`` marker; raises if a block of ``task`` is not done."""
        missing = task.num_blocks - len(self.done_ids() & set(range(task.num_blocks)))
        if missing:
            raise SynfulError(self.done_dir, f"{missing} of {task.num_blocks} blocks are not done")
        _write_atomic(self.done_dir / COMPLETE_FILE, json.dumps({"num_blocks": task.num_blocks}))

    def clear(self) -> None:
        """Remove all markers (start over); refuses a directory that is not a marker directory."""
        self._check_ours()
        remove_path(self.done_dir)

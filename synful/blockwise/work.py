"""The lifecycle of an output written blockwise: one implementation for every stage.

A stage (prediction, extraction) describes its output by a :class:`BlockwiseWork`: the work
directory, the task (its blocks) and the *recipe* (what determines the content: its inputs
by content, e.g. :func:`synful.identity.file_identity` of a checkpoint and
:func:`synful.identity.store_identity` of a store, and every setting)::

    work = BlockwiseWork(partial, task, recipe, done=".blocks_done")
    work.prepare(create=make_empty_store, restart=restart)   # resume or create
    work.run(processor, workers=..., scheduler=...)          # the blocks not yet done
    work.finish(publish)                                     # all done: output appears

* :meth:`~BlockwiseWork.prepare` resumes a work directory whose identity (task and recipe,
  stored with its done store, :mod:`.markers`) is this one's. Another identity is never
  resumed: a one-line :class:`~synful.errors.SynfulError` names what differs and says that
  ``--restart`` (``restart=True``) starts fresh. A new work directory is built in a temporary
  sibling (``create(tmp)``, then the done store) and renamed into place, so it appears with
  its identity or not at all.
* :meth:`~BlockwiseWork.run` runs :func:`~.run.run_blockwise` on the done store; a run that
  fails before any block is done removes the work directory it created (nothing to resume).
* :meth:`~BlockwiseWork.finish` checks that every block is done, calls ``publish(path)``,
  which must make the output appear atomically (rename the work directory into place, or
  write the output from it with :func:`synful.atomic.atomic_output`), and then removes what
  is left of the work directory.

Which paths a stage may write and the lock against a second run are
:func:`synful.outputs.claim`'s business; claim the output and the work directory first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..atomic import atomic_output, discard, remove_path
from ..errors import SynfulError
from ..identity import recipe_identity
from .markers import DoneMarkers, differences, identity_of
from .scheduler import BlockwiseError, BlockwiseResult, run_blockwise
from .task import BlockwiseTask

#: ``prepare(restart=STALE)``: start fresh only when the unfinished work is of another recipe
STALE = "stale"


class BlockwiseWork:
    """A resumable blockwise output: work directory, identity, done store, finalisation.

    Args:
        path: the work directory (e.g. ``.OUT.partial`` or ``OUT.blocks``).
        task: the blocks.
        recipe: JSON-able identity of what the blocks are made from (inputs by content,
            settings); with the task, it decides whether existing work may be resumed.
        done: the done store's directory relative to ``path`` (``""``: ``path`` itself).
    """

    def __init__(self, path: str | os.PathLike, task: BlockwiseTask, recipe: dict, *,
                 done: str = ""):  # fmt: skip
        self.path = Path(path)
        self.task = task
        self.recipe = recipe
        self.done_dir = self.path / done if done else self.path
        self.created = False

    @property
    def identity(self) -> dict:
        """The stored form of the task and recipe."""
        return identity_of(self.task, self.recipe)

    @property
    def digest(self) -> str:
        """sha256 of :attr:`identity`: record it in the finished output to recognise it."""
        return recipe_identity(self.identity)

    @property
    def markers(self) -> DoneMarkers:
        return DoneMarkers(self.done_dir)

    def differences(self) -> list[str]:
        """What differs between the existing work directory and this one ([] when same)."""
        stored = self.markers.identity()
        if stored is None:
            return ["format (written by another synful version)"]
        return differences(stored, self.identity)

    def prepare(self, create: Callable[[Path], None] | None = None, *,
                restart: bool | str = False) -> bool:  # fmt: skip
        """Resume the work directory, or create it.

        Args:
            create: fills a new work directory (given a temporary path, which it may create;
                e.g. an empty output store); ``None``: an empty directory.
            restart: ``True``: discard an existing work directory (of any recipe) and start
                fresh; ``"stale"``: discard it only when it was made from another task or
                recipe (what a workflow rerun wants: a killed job of the same recipe resumes,
                a job whose inputs or settings changed starts fresh); ``False``: never.

        Returns:
            True when existing work is resumed.

        Raises:
            SynfulError: the work directory belongs to another task or recipe and
                ``restart`` is false (one line naming what differs).
        """
        if self.path.exists():
            if restart == STALE:
                if self.differences():
                    discard(self.path)
                else:
                    return True
            elif restart:
                discard(self.path)
            else:
                differ = self.differences()
                if differ:
                    raise SynfulError(
                        self.path,
                        f"holds unfinished work of another run ({', '.join(differ)} differ); "
                        "rerun with --restart to start fresh",
                    )
                return True
        with atomic_output(self.path) as building:
            if create is not None:
                create(building)
            building.mkdir(exist_ok=True)
            DoneMarkers(building / self.done_dir.relative_to(self.path)).initialise(
                self.task, self.recipe
            )
        self.created = True
        return False

    def run(self, process_block, **kwargs) -> BlockwiseResult:
        """:func:`~.run.run_blockwise` over the blocks not yet done (``kwargs``: workers,
        scheduler, progress, max_retries, desc)."""
        try:
            return run_blockwise(
                self.task, process_block, done_dir=self.done_dir, recipe=self.recipe, **kwargs
            )
        except BaseException:
            if self.created and self._nothing_done():
                discard(self.path)  # nothing to resume: leave nothing behind
            raise

    def _nothing_done(self) -> bool:
        try:
            return self.markers.count() == 0
        except (OSError, SynfulError, ValueError):
            return False

    def is_complete(self) -> bool:
        return self.path.exists() and self.markers.is_complete()

    def finish(self, publish: Callable[[Path], None]) -> None:
        """Make the output appear: every block must be done; ``publish(path)`` writes the output
        atomically from the work directory; what is left of the directory is removed."""
        markers = self.markers
        if not markers.is_complete():
            missing = self.task.num_blocks - (markers.count() if self.path.exists() else 0)
            raise BlockwiseError(
                self.path, f"{missing} of {self.task.num_blocks} blocks are not done"
            )
        publish(self.path)
        if os.path.lexists(self.path):
            remove_path(self.path)

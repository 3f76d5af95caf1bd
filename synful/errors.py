"""The one error type that the command line turns into ``synful: error: <file>: <problem>``."""

from __future__ import annotations

import os


class SynfulError(Exception):
    """Bad input or a failed step, reported to the user as one line.

    Args:
        path: the file (or store, or config key) the problem is about, or ``None``.
        problem: what is wrong, as a short phrase without a trailing period.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem

"""Postsynaptic candidates: voxel positions inside an array plus a score each."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Candidate postsynaptic locations found in one array.

    Args:
        voxels: (N, 3) int64 voxel indices (z, y, x) into the array they were found in.
        scores: (N,) float64 scores.
    """

    voxels: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        voxels = np.asarray(self.voxels, dtype=np.int64).reshape(-1, 3)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(voxels) != len(scores):
            raise ValueError(f"{len(voxels)} voxels but {len(scores)} scores")
        object.__setattr__(self, "voxels", voxels)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 3), np.int64), np.zeros(0, np.float64))

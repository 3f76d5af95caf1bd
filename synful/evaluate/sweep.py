"""Score thresholds for the precision-recall sweep.

A prediction is kept at threshold ``t`` when ``score >= t`` (as the FAFB evaluation did), so a
threshold equal to the lowest score keeps every prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AUTO = "auto"
DEFAULT_AUTO_COUNT = 50


def auto_thresholds(scores, max_count: int = DEFAULT_AUTO_COUNT) -> list[float]:
    """A deterministic set of thresholds from the prediction scores.

    All distinct scores when there are at most ``max_count`` of them, else ``max_count``
    evenly spaced quantiles of the scores (each one an actual score, so every step of the
    precision-recall curve is a real cut). The lowest score is always included.

    Args:
        scores: the prediction scores.
        max_count: the largest number of thresholds.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) == 0:
        return []
    distinct = np.unique(scores)
    if len(distinct) <= max_count:
        return [float(s) for s in distinct]
    picked = np.quantile(scores, np.linspace(0.0, 1.0, max_count), method="inverted_cdf")
    return [float(s) for s in np.unique(picked)]


def kept_at(scores, threshold: float) -> np.ndarray:
    """Boolean mask of the predictions kept at ``threshold`` (``score >= threshold``)."""
    return np.asarray(scores, dtype=np.float64) >= threshold


def resolve_thresholds(spec: str | Sequence[float] | None, scores) -> list[float] | None:
    """The list of thresholds for ``spec``: ``None`` (no sweep), ``"auto"`` or numbers.

    Numbers are sorted and deduplicated.

    Raises:
        ValueError: an unknown string.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec != AUTO:
            raise ValueError(
                f"score thresholds must be a list of numbers or {AUTO!r}, not {spec!r}"
            )
        return auto_thresholds(scores)
    return sorted({float(t) for t in spec})

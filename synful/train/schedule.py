"""The learning-rate schedule: a pure function of the iteration.

``constant`` (the original's: Adam at a fixed rate), ``cosine`` or ``linear``: an optional
linear warm-up from 0 over ``lr_warmup`` iterations, then a decay from ``learning_rate`` to
``learning_rate * lr_final`` at ``max_iteration`` (and that rate beyond it). Being a function of
the iteration alone, a resumed run gets exactly the rates of an uninterrupted one.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "linear")


def learning_rate_at(
    iteration: int,
    learning_rate: float,
    schedule: str = "constant",
    warmup: int = 0,
    final: float = 0.0,
    max_iteration: int = 1,
) -> float:
    """The learning rate of the optimiser step of ``iteration`` (1-based).

    Args:
        iteration: the iteration being trained (1 = the first step).
        learning_rate: the peak rate.
        schedule: ``constant``, ``cosine`` or ``linear``.
        warmup: iterations of linear warm-up (rate ``learning_rate * iteration / warmup``).
        final: the decay's end as a fraction of ``learning_rate`` (ignored by ``constant``).
        max_iteration: where the decay ends.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r} (expected one of {', '.join(SCHEDULES)})")
    if warmup > 0 and iteration <= warmup:
        return learning_rate * iteration / warmup
    if schedule == "constant":
        return learning_rate
    span = max_iteration - warmup
    progress = min(max(iteration - warmup, 0) / span, 1.0) if span > 0 else 1.0
    if schedule == "cosine":
        factor = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0 - (1.0 - final) * progress
    return learning_rate * factor

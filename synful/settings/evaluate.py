"""The evaluation settings, defined once: :class:`EvaluateSettings` (the CREMI matching and
Synful's variants) and :class:`ErrorSettings` (where ``--errors-csv`` classifies errors).
``synful evaluate``'s options, the defaults of :mod:`synful.evaluate`'s functions and the
workflow's ``evaluate:`` defaults (``config/schema.yaml``, checked by
``tests/test_settings_defaults.py``) come from here. Imports no stage (no numpy, scipy).
"""

# no ``from __future__ import annotations``: the fields' types are read at run time
import dataclasses

from .fields import check_fields, setting

#: where errors are classified: at the best score threshold of the sweep, or at every one
ERRORS_AT = ("best", "sweep")
#: how ``--mask`` selects what is counted: ``all_pairs`` matches every pair and counts the
#: true pairs inside the mask (recall) and the predictions inside it (precision);
#: ``inside_pairs`` matches only the pairs inside (the rule before 2026-12-02)
MASK_RULES = ("all_pairs", "inside_pairs")


@dataclasses.dataclass(frozen=True)
class EvaluateSettings:
    """How predicted pairs are scored against ground truth (validated)."""

    matching_threshold: float = setting(
        400.0,
        "matching threshold T (nm): a predicted and a true pair can match when both their pre "
        "and their post points are at most T apart (the CREMI rule)",
        above=0.0, metavar="NM",
    )  # fmt: skip
    score_thresholds: tuple[float, ...] | str | None = setting(
        None,
        "sweep these score thresholds (kept: score >= S), or 'auto' for a deterministic set "
        "from the prediction scores",
        metavar="S",
    )
    filter_same_seg: bool = setting(
        False,
        "drop predictions whose pre and post lie in the same ground-truth segment ('with seg')",
    )
    pre_only: bool = setting(False, "gate and cost on the pre distance only (FAFB protocol)")
    merge_radius: float | None = setting(
        None,
        "merge same-label predictions whose post points are within NM, keeping the best score",
        above=0.0, metavar="NM",
    )  # fmt: skip
    mask_rule: str = setting(
        "all_pairs",
        "with --mask (pairs belong to it by their post point): 'all_pairs' matches every pair "
        "and counts the true pairs inside (recall) and the predictions inside (precision), so "
        "a synapse detected across the mask's border is neither missed nor a false positive; "
        "'inside_pairs' matches only the pairs inside",
        choices=MASK_RULES,
    )

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class ErrorSettings:
    """Where the false negatives and false positives are classified (``--errors-csv``)."""

    errors_at: str | None = setting(
        None,
        "--errors-csv at the best threshold of the sweep (None: best) or at every swept one",
        choices=ERRORS_AT,
    )
    extraction_threshold: float | None = setting(
        None,
        "the threshold the pairs were extracted at (synful extract --threshold; None: its "
        "default); with --predictions",
        minimum=0.0, maximum=1.0, metavar="T",
    )  # fmt: skip

    def __post_init__(self):
        check_fields(self)

"""CREMI synaptic-partner evaluation (the official score, exactly, and Synful's variants).

Modules: :mod:`.labels` (label lookup with CREMI rounding), :mod:`.matching` (the assignment,
per connected group), :mod:`.score` (counts -> P/R/F, combining samples), :mod:`.sweep`
(score thresholds), :mod:`.variants` (same-segment filter, duplicate merging),
:mod:`.inputs` (ground truth, predictions, masks), :mod:`.evaluation` (the stage),
:mod:`.errors` (every false negative and false positive by cause), :mod:`.outputs` and
:mod:`.plots` (JSON, CSV, plot). Never imports torch.
"""

from .errors import (
    COUNT_COLUMNS,
    ERROR_COLUMNS,
    FN_CAUSES,
    FP_CAUSES,
    classify_errors,
    count_errors,
    error_counts_table,
    errors_path,
    post_indicator_near,
    read_errors,
)
from .evaluation import evaluate_files, evaluate_files_with_errors, evaluate_pairs
from .outputs import write_metrics_json, write_precision_recall_plot, write_results, write_sweep_csv
from .score import combine_metrics, metrics_from_counts, precision_recall_fscore

__all__ = [
    "COUNT_COLUMNS",
    "ERROR_COLUMNS",
    "FN_CAUSES",
    "FP_CAUSES",
    "classify_errors",
    "combine_metrics",
    "count_errors",
    "error_counts_table",
    "errors_path",
    "evaluate_files",
    "evaluate_files_with_errors",
    "evaluate_pairs",
    "post_indicator_near",
    "read_errors",
    "metrics_from_counts",
    "precision_recall_fscore",
    "write_metrics_json",
    "write_precision_recall_plot",
    "write_results",
    "write_sweep_csv",
]

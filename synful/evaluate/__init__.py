"""CREMI synaptic-partner evaluation (the official score, exactly, and Synful's variants).

Modules: :mod:`.labels` (label lookup with CREMI rounding), :mod:`.matching` (the assignment,
per connected group), :mod:`.score` (counts -> P/R/F, combining samples), :mod:`.sweep`
(score thresholds), :mod:`.variants` (same-segment filter, duplicate merging),
:mod:`.inputs` (ground truth, predictions, masks), :mod:`.evaluation` (the stage),
:mod:`.outputs` and :mod:`.plots` (JSON, CSV, plot). Never imports torch.
"""

from .evaluation import evaluate_files, evaluate_pairs
from .outputs import write_metrics_json, write_precision_recall_plot, write_results, write_sweep_csv
from .score import combine_metrics, metrics_from_counts, precision_recall_fscore

__all__ = [
    "combine_metrics",
    "evaluate_files",
    "evaluate_pairs",
    "metrics_from_counts",
    "precision_recall_fscore",
    "write_metrics_json",
    "write_precision_recall_plot",
    "write_results",
    "write_sweep_csv",
]

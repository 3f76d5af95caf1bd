"""Synthetic CREMI-like samples: neurons, membranes, distractors and polyadic synapses."""

from .preview import write_preview
from .sample import SyntheticParameters, synthesize_sample

__all__ = ["SyntheticParameters", "synthesize_sample", "write_preview"]

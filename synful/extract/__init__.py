"""Synapse extraction: postsynaptic candidates (cc or nms), partners, the blockwise run over a store (:mod:`.volume`).

The stage function is :func:`extract_synapses`; :func:`extract_block` and
:func:`extract_from_arrays` run without a scheduler. This package never imports torch.
"""

from ..settings.extract import ExtractConfig
from .block import extract_block, extract_from_arrays, synapse_ids
from .candidates import Candidates
from .components import cc_candidates
from .nms import nms_candidates
from .partners import partner_locations, read_vectors
from .summary import summarize
from .volume import extract_synapses, run_extract_blocks, work_directory

__all__ = [
    "Candidates",
    "ExtractConfig",
    "cc_candidates",
    "extract_block",
    "extract_from_arrays",
    "extract_synapses",
    "nms_candidates",
    "partner_locations",
    "read_vectors",
    "run_extract_blocks",
    "summarize",
    "synapse_ids",
    "work_directory",
]

"""Synthetic CREMI-like samples: neurons, membranes, distractors and polyadic synapses."""

from .sample import SyntheticParameters, synthesize_sample

__all__ = ["SyntheticParameters", "synthesize_sample", "write_preview"]


def __getattr__(name):
    # the preview reads through synful.io.zarr_array (funlib.persistence, dask: ~1 s to
    # import), which a synthesize job without --preview does not need
    if name == "write_preview":
        from .preview import write_preview

        return write_preview
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

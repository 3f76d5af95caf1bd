"""Input and output at the edges: CREMI HDF5, zarr sample/prediction stores, synapse tables,
existing raw volumes (zarr v2/v3, N5, OME-Zarr: :func:`open_raw_array` in :mod:`.volumes`)."""

__all__ = ["open_raw_array"]


def __getattr__(name):  # lazy: importing synful.io.cremi alone does not import zarr
    if name == "open_raw_array":
        from .volumes import open_raw_array

        return open_raw_array
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

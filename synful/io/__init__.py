"""Input and output at the edges: CREMI HDF5, zarr sample/prediction stores, synapse tables."""

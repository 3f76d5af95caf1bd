"""``extract --vectors``: post_indicator from one prediction store, partner_vectors from another.

Split stores (as written by a mask-only and a vector-only network) must give exactly the
table of one store holding both arrays, blockwise, with workers and on resume.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from _extract_stores import blob_map, random_vectors, write_prediction_store

from synful.blockwise import DoneMarkers
from synful.cli import main
from synful.errors import SynfulError
from synful.extract import ExtractConfig, extract_synapses, run_extract_blocks, work_directory
from synful.extract.predictions import open_predictions
from synful.io.synapse_table import read_synapses
from synful.io.zarr_array import write_volume

VS = (40, 4, 4)
SHAPE = (8, 48, 48)
CENTRES = [(2, 10, 12), (4, 24, 23), (5, 8, 36), (6, 36, 36), (3, 40, 8)]
OFFSET = (400, 80, 120)
# the vector store covers more than the post_indicator: 1 section and 4 voxels more per side
MARGIN = (1, 4, 4)


@pytest.fixture
def prob():
    return blob_map(SHAPE, CENTRES, radius_vox=(1, 4, 4), value=0.95, seed=3)


@pytest.fixture
def vectors():
    return random_vectors(SHAPE, seed=4, steps=20)


def _split_stores(tmp_path, prob, vectors, quantized=False):
    """A combined store and the same arrays as a mask-only and a (larger) vector-only store."""
    combined = write_prediction_store(
        tmp_path / "both.zarr",
        prob,
        vectors,
        offset=OFFSET,
        quantized=quantized,
        chunks=(4, 16, 16),
    )
    both = zarr.open_group(str(combined), mode="r")
    mask_store = tmp_path / "mask.zarr"
    group = zarr.open_group(str(mask_store), mode="w")
    mask = both["post_indicator"]
    write_volume(group, "post_indicator", mask[...], VS, OFFSET, attrs=dict(mask.attrs))
    # the vector store: other chunks, a larger ROI (its own offset), padded with junk
    vec = both["partner_vectors"]
    padded = np.full((3, *(s + 2 * m for s, m in zip(SHAPE, MARGIN))), 99, dtype=vec.dtype)
    inner = tuple(slice(m, m + s) for m, s in zip(MARGIN, SHAPE))
    padded[(slice(None), *inner)] = vec[...]
    vec_offset = tuple(o - m * v for o, m, v in zip(OFFSET, MARGIN, VS))
    vector_store = tmp_path / "vectors.zarr"
    group = zarr.open_group(str(vector_store), mode="w")
    write_volume(
        group,
        "partner_vectors",
        padded,
        VS,
        vec_offset,
        channels=1,
        attrs={"scale": vec.attrs["scale"]} if "scale" in vec.attrs else None,
        chunks=(3, 3, 10, 10),
    )
    return combined, mask_store, vector_store


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("mode", ["cc", "nms"])
def test_split_stores_equal_one_combined_store(tmp_path, prob, vectors, mode, quantized):
    combined, mask_store, vector_store = _split_stores(tmp_path, prob, vectors, quantized)
    kwargs = {"mode": mode, "progress": False}
    expected = extract_synapses(combined, tmp_path / "combined.parquet", **kwargs)
    assert len(expected) >= len(CENTRES)
    for block_shape in (None, (3, 16, 16), (5, 13, 21)):
        out = tmp_path / f"split_{block_shape is None}.parquet"
        table = extract_synapses(
            mask_store, out, vectors_store=vector_store, block_shape=block_shape, **kwargs
        )
        pd.testing.assert_frame_equal(table, expected)
        pd.testing.assert_frame_equal(
            read_synapses(out), read_synapses(tmp_path / "combined.parquet")
        )
        assert not work_directory(out).exists()


def test_vectors_come_from_the_vector_store(tmp_path, prob, vectors):
    """A main store that also has (other) partner_vectors: --vectors wins."""
    combined, _, vector_store = _split_stores(tmp_path, prob, vectors)
    other = write_prediction_store(tmp_path / "other.zarr", prob, -vectors, offset=OFFSET)
    expected = extract_synapses(combined, tmp_path / "a.parquet", progress=False)
    table = extract_synapses(
        other, tmp_path / "b.parquet", vectors_store=vector_store, progress=False
    )
    pd.testing.assert_frame_equal(table, expected)
    # the same store as its own vector store is the plain extraction
    same = extract_synapses(
        combined, tmp_path / "c.parquet", vectors_store=combined, progress=False
    )
    pd.testing.assert_frame_equal(same, expected)


def test_workers_and_resume_with_a_vector_store(tmp_path, prob, vectors):
    combined, mask_store, vector_store = _split_stores(tmp_path, prob, vectors)
    expected = extract_synapses(combined, tmp_path / "e.parquet", progress=False)
    threaded = extract_synapses(
        mask_store,
        tmp_path / "t.parquet",
        vectors_store=vector_store,
        block_shape=(4, 24, 24),
        workers=2,
        scheduler="threads",
        progress=False,
    )
    pd.testing.assert_frame_equal(threaded, expected)
    out = tmp_path / "r.parquet"
    config = ExtractConfig()
    kwargs = {"block_shape": (4, 24, 24), "progress": False}
    processor, task, result = run_extract_blocks(
        mask_store, out, config, vectors_store=vector_store, **kwargs
    )
    assert result.processed == task.num_blocks == 8
    markers = DoneMarkers(work_directory(out))
    markers.unmark([3])
    markers.close()
    processor.table_path(3).unlink()
    _, _, result = run_extract_blocks(mask_store, out, config, vectors_store=vector_store, **kwargs)
    assert (result.skipped, result.processed) == (7, 1)
    # another vector store is another run: its work is never resumed, only restarted
    with pytest.raises(SynfulError, match="--restart"):
        run_extract_blocks(mask_store, out, config, vectors_store=combined, **kwargs)
    _, _, result = run_extract_blocks(
        mask_store, out, config, vectors_store=combined, restart=True, **kwargs
    )
    assert (result.skipped, result.processed) == (0, 8)
    resumed = extract_synapses(mask_store, out, vectors_store=vector_store, restart=True, **kwargs)
    pd.testing.assert_frame_equal(resumed, expected)


def test_cli_vectors_option(tmp_path, prob, vectors, capsys):
    combined, mask_store, vector_store = _split_stores(tmp_path, prob, vectors)
    argv = ["extract", "--quiet", "--block-shape", "4", "16", "16"]
    assert main([*argv, str(combined), str(tmp_path / "a.parquet")]) == 0
    assert (
        main([*argv, str(mask_store), str(tmp_path / "b.parquet"), "--vectors", str(vector_store)])
        == 0
    )
    pd.testing.assert_frame_equal(
        read_synapses(tmp_path / "b.parquet"), read_synapses(tmp_path / "a.parquet")
    )
    out = tmp_path / "c.parquet"
    assert main(["extract", str(combined), str(out), "--vectors", str(tmp_path / "no.zarr")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"synful: error: {tmp_path / 'no.zarr'}: no such vector prediction store"
    assert not out.exists() and not work_directory(out).exists()


def _no_outputs(tmp_path, out):
    assert not out.exists() and not work_directory(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_mismatched_or_missing_vector_stores_are_errors(tmp_path, prob, vectors):
    combined, mask_store, vector_store = _split_stores(tmp_path, prob, vectors)
    out = tmp_path / "out.parquet"

    def fails(vector_path, match, store=mask_store):
        with pytest.raises(SynfulError, match=match) as info:
            extract_synapses(store, out, vectors_store=vector_path, progress=False)
        _no_outputs(tmp_path, out)
        return info.value

    # without --vectors a store lacking partner_vectors is not a prediction store (as before)
    with pytest.raises(SynfulError, match="not a prediction store: missing array partner_vectors"):
        extract_synapses(mask_store, out, progress=False)
    fails(tmp_path / "missing.zarr", "no such vector prediction store")
    fails(mask_store, "missing array partner_vectors")  # mask.zarr has no vectors
    fails(vector_store, "missing array post_indicator", store=vector_store)

    def vector_only(name, data, voxel_size=VS, offset=OFFSET, channels=1):
        group = zarr.open_group(str(tmp_path / name), mode="w")
        write_volume(group, "partner_vectors", data, voxel_size, offset, channels=channels)
        return tmp_path / name

    error = fails(vector_only("vs.zarr", vectors[:, :, ::2, ::2], (40, 8, 8)), "voxel size")
    assert str(tmp_path / "vs.zarr") in str(error) and "[40, 8, 8]" in str(error)
    smaller = vector_only("small.zarr", vectors[:, 1:])
    error = fails(smaller, "does not cover")
    assert str(tmp_path / "small.zarr") in str(error)
    fails(vector_only("shifted.zarr", vectors, offset=(440, 80, 120)), "does not cover")
    fails(vector_only("offgrid.zarr", vectors, offset=(400, 78, 120)), "voxel grid")
    fails(vector_only("shape.zarr", vectors[:2]), r"\(3, z, y, x\)")
    # a float-less integer vector array needs its scale, as in one store
    fails(vector_only("int.zarr", vectors.astype(np.int16)), "without a scale")
    # the check happens when opening, also outside the blockwise run
    with pytest.raises(SynfulError, match="does not cover"):
        open_predictions(mask_store, smaller)

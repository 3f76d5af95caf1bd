"""Existing raw volumes as input (synful.io.volumes): zarr v2/v3, N5, OME-Zarr, and prediction
from them equal to prediction from a sample store."""

import base64
import gzip
import json

import numpy as np
import pytest
import zarr
from _predict_fixtures import RAW_OFFSET, VOXEL, make_checkpoint, make_sample

from synful.cli import main
from synful.errors import SynfulError
from synful.io.volumes import (
    OmeLevel,
    WorldMetadata,
    check_metadata,
    funlib_metadata,
    n5_metadata,
    ome_levels,
    open_raw_array,
    pick_level,
)
from synful.io.zarr_array import Array, array_path, open_array, read, storage
from synful.predict import predict

# ------------------------------------------------------------------ writers for the tests


def write_n5(path, data, block, attrs=None, compression="gzip", skip_empty=False):
    """An N5 dataset as the Java reference writes it: attributes and blocks in x, y, z order,
    edge blocks truncated, big-endian values, x fastest."""
    path.mkdir(parents=True)
    root = next((p for p in [path, *path.parents] if p.suffix == ".n5"), None)
    if root is not None and not (root / "attributes.json").exists():
        (root / "attributes.json").write_text(json.dumps({"n5": "4.0.0"}))
    meta = {
        "dimensions": list(data.shape[::-1]),
        "blockSize": list(block[::-1]),
        "dataType": data.dtype.name,
        "compression": {"type": compression},
    }
    meta.update(attrs or {})
    (path / "attributes.json").write_text(json.dumps(meta))
    grid = [-(-s // b) for s, b in zip(data.shape, block)]
    for index in np.ndindex(*grid):
        part = data[tuple(slice(i * b, (i + 1) * b) for i, b in zip(index, block))]
        if skip_empty and not part.any():
            continue
        header = (
            np.array([0, part.ndim], ">u2").tobytes() + np.array(part.shape[::-1], ">u4").tobytes()
        )
        payload = part.astype(part.dtype.newbyteorder(">")).tobytes()
        if compression == "gzip":
            payload = gzip.compress(payload)
        file = path.joinpath(*(str(i) for i in index[::-1]))
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(header + payload)


def write_zarr(path, data, attrs, zarr_format=3, chunks=(4, 8, 8)):
    array = zarr.create_array(
        str(path),
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks,
        zarr_format=zarr_format,
        attributes=attrs,
    )
    array[...] = data
    return array


def ome_axes(unit="nanometer"):
    return [{"name": a, "type": "space", "unit": unit} for a in "zyx"]


def write_ome(path, levels, version="0.4", axes=None, outer=None):
    """An OME-Zarr multiscale image: ``levels`` = [(path, data, scale, translation)]."""
    zarr_format = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    for name, data, scale, translation in levels:
        chunks = (1,) * (data.ndim - 3) + (4, 8, 8)
        group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks)[...] = data
        datasets.append({
            "path": name,
            "coordinateTransformations": [
                {"type": "scale", "scale": list(scale)},
                {"type": "translation", "translation": list(translation)},
            ],
        })  # fmt: skip
    multiscale = {
        "version": version,
        "name": "raw",
        "axes": axes or ome_axes(),
        "datasets": datasets,
    }
    if outer:
        multiscale["coordinateTransformations"] = outer
    if version == "0.4":
        group.attrs["multiscales"] = [multiscale]
    else:
        multiscale.pop("version")
        group.attrs["ome"] = {"version": version, "multiscales": [multiscale]}
    return path


def data(shape=(6, 10, 12), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------ pure metadata parsing


def test_funlib_metadata_conventions():
    meta = funlib_metadata(
        {
            "voxel_size": [40, 4, 4],
            "offset": [80, 8, 4],
            "axis_names": ["z", "y", "x"],
            "units": ["nm", "nm", "nm"],
        }
    )
    assert meta == WorldMetadata((40, 4, 4), (80, 8, 4), ("z", "y", "x"), "funlib")
    old = funlib_metadata({"resolution": [40, 4, 4]})  # gunpowder/daisy zarr: z, y, x, offset 0
    assert (old.voxel_size, old.offset, old.source) == ((40, 4, 4), (0, 0, 0), "resolution")
    micrometres = funlib_metadata(
        {"voxel_size": [0.04, 0.004, 0.004], "offset": [1, 0, 0], "units": "um"}
    )
    assert np.allclose(micrometres.voxel_size, (40, 4, 4)) and np.allclose(
        micrometres.offset, (1000, 0, 0)
    )
    assert funlib_metadata({"other": 1}) is None
    with pytest.raises(SynfulError, match="unknown unit 'parsec'"):
        funlib_metadata({"voxel_size": [1, 1, 1], "units": "parsec"})
    with pytest.raises(SynfulError, match="differ in length"):
        funlib_metadata({"voxel_size": [40, 4, 4], "offset": [0, 0]})


def test_n5_metadata_is_reversed_from_xyz():
    meta = n5_metadata({"resolution": [4, 8, 40], "offset": [12, 16, 400]})
    assert meta.voxel_size == (40, 8, 4) and meta.offset == (400, 16, 12)
    viewer = n5_metadata({"pixelResolution": {"dimensions": [0.004, 0.004, 0.04], "unit": "um"}})
    assert np.allclose(viewer.voxel_size, (40, 4, 4)) and viewer.offset == (0, 0, 0)
    assert n5_metadata({"dimensions": [1, 2, 3]}) is None


def test_ome_levels_v04_and_v05_with_outer_transform():
    attrs = {"multiscales": [{
        "version": "0.4", "axes": ome_axes("micrometer"),
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.04, 0.004, 0.004]}]},
            {"path": "1", "coordinateTransformations": [
                {"type": "scale", "scale": [0.04, 0.008, 0.008]},
                {"type": "translation", "translation": [0, 0.002, 0.002]}]},
        ],
    }]}  # fmt: skip
    levels = ome_levels(attrs)
    assert [lv.path for lv in levels] == ["0", "1"]
    assert np.allclose(levels[1].metadata.voxel_size, (40, 8, 8))
    assert np.allclose(levels[1].metadata.offset, (0, 2, 2))
    assert pick_level(levels, (40, 8, 8)).path == "1" and pick_level(levels, None).path == "0"
    # v0.5: under "ome"; a multiscale-level transform applies after the dataset's
    v05 = {"ome": {"version": "0.5", "multiscales": [{
        "axes": ome_axes(),
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": [1, 1, 1]}, {"type": "translation", "translation": [2, 3, 4]}]}],
        "coordinateTransformations": [{"type": "scale", "scale": [40, 4, 4]}],
    }]}}  # fmt: skip
    (level,) = ome_levels(v05)
    assert level.metadata.voxel_size == (40, 4, 4) and level.metadata.offset == (80, 12, 16)
    assert ome_levels({"voxel_size": [1, 1, 1]}) is None


def test_no_matching_level_is_one_line_listing_the_levels():
    levels = [
        OmeLevel("0", WorldMetadata((40, 4, 4), (0, 0, 0))),
        OmeLevel("1", WorldMetadata((40, 8, 8), (0, 0, 0))),
    ]
    with pytest.raises(SynfulError) as error:
        pick_level(levels, (40, 16, 16), "img.zarr")
    assert str(error.value) == (
        "img.zarr: no OME-Zarr level has the network's voxel size [40, 16, 16] nm "
        "(levels: 0 [40, 4, 4], 1 [40, 8, 8])"
    )


@pytest.mark.parametrize(
    "metadata,shape,voxel_size,message",
    [
        (WorldMetadata((40, 4, 4), (0, 0, 0)), (3, 4, 5), (40, 8, 8),
         "a: raw voxel size [40, 4, 4] nm differs from the network's [40, 8, 8] nm"),
        (WorldMetadata((1, 40, 4, 4), (0, 0, 0, 0), ("c", "z", "y", "x")), (2, 3, 4, 5), None,
         "a: raw must be a 3D (z, y, x) array, not 4D (c, z, y, x)"),
        (WorldMetadata((4, 4), (0, 0), ("c^", "y", "x")), (3, 4, 5), None,
         "a: raw must have 3 spatial axes (z, y, x), not 2 (c^, y, x)"),
        (WorldMetadata((4, 4, 40), (0, 0, 0), ("x", "y", "z")), (3, 4, 5), None,
         "a: axes ['x', 'y', 'z'] are not in (z, y, x) order"),
        (WorldMetadata((40, 4, 4.5), (0, 0, 0)), (3, 4, 5), None,
         "a: voxel size [40, 4, 4.5] nm is not a whole number of nm"),
        (WorldMetadata((40, 4, 4), (0, 0, 0.5)), (3, 4, 5), None,
         "a: offset [0, 0, 0.5] nm is not a whole number of nm"),
        (None, (3, 4, 5), None, "a: array has no voxel size"),
    ],
)  # fmt: skip
def test_check_metadata_errors_are_one_line(metadata, shape, voxel_size, message):
    with pytest.raises(SynfulError) as error:
        check_metadata(metadata, shape, "a", voxel_size)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


# ------------------------------------------------------------------ real files


def assert_volume(volume, expected, voxel_size, offset):
    assert isinstance(volume, Array)
    assert tuple(volume.voxel_size) == voxel_size and tuple(volume.offset) == offset
    np.testing.assert_array_equal(read(volume), expected)
    # a world-ROI read partly outside the array is zero-filled
    roi = volume.roi.grow(volume.voxel_size, volume.voxel_size)
    padded = read(volume, roi)
    np.testing.assert_array_equal(padded[1:-1, 1:-1, 1:-1], expected)
    assert padded[0].sum() == 0 and padded[:, :, -1].sum() == 0
    # reopened by name (as workers do): the same array and metadata
    again = open_raw_array(array_path(volume))
    assert (again.voxel_size, again.offset) == (volume.voxel_size, volume.offset)


def test_sample_store_opens_its_raw(tmp_path):
    store, raw = make_sample(tmp_path / "sample.zarr")
    volume = open_raw_array(store, voxel_size=VOXEL)
    assert array_path(volume) == str(store / "raw") and isinstance(storage(volume), zarr.Array)
    assert_volume(volume, raw, VOXEL, RAW_OFFSET)


def test_zarr_v2_array_with_funlib_attributes(tmp_path):
    raw = data()
    write_zarr(tmp_path / "c.zarr" / "volumes" / "raw", raw, zarr_format=2, attrs={
        "voxel_size": [40, 4, 4], "offset": [400, 40, 80], "axis_names": ["z", "y", "x"],
        "units": ["nm", "nm", "nm"]})  # fmt: skip
    assert (tmp_path / "c.zarr" / "volumes" / "raw" / ".zarray").exists()
    volume = open_raw_array(tmp_path / "c.zarr/volumes/raw", voxel_size=(40, 4, 4))
    assert_volume(volume, raw, (40, 4, 4), (400, 40, 80))


def test_zarr_v3_array_with_resolution_attributes(tmp_path):
    raw = data()
    write_zarr(
        tmp_path / "c.zarr" / "raw_v3", raw, {"resolution": [40, 4, 4], "offset": [40, 0, 4]}
    )
    volume = open_raw_array(tmp_path / "c.zarr/raw_v3")
    assert_volume(volume, raw, (40, 4, 4), (40, 0, 4))


def test_n5_with_xyz_attributes_and_offset(tmp_path):
    raw = data((7, 10, 13))
    path = tmp_path / "c.n5" / "volumes" / "raw"
    # world (z, y, x): voxel (40, 4, 2) nm, offset (800, 12, 6) nm; N5 lists x first
    write_n5(
        path,
        raw,
        block=(3, 4, 5),
        attrs={"resolution": [2, 4, 40], "offset": [6, 12, 800]},
        skip_empty=True,
    )
    volume = open_raw_array(path, voxel_size=(40, 4, 2))
    assert_volume(volume, raw, (40, 4, 2), (800, 12, 6))
    np.testing.assert_array_equal(storage(volume)[2:6, 3:9, 4:11], raw[2:6, 3:9, 4:11])


def test_n5_missing_blocks_read_as_zero(tmp_path):
    raw = np.zeros((4, 4, 4), np.uint8)
    raw[2:, 2:, 2:] = 7
    path = tmp_path / "c.n5" / "raw"
    write_n5(
        path,
        raw,
        block=(2, 2, 2),
        attrs={"resolution": [1, 1, 1]},
        compression="raw",
        skip_empty=True,
    )
    assert len(list(path.rglob("*"))) < 12  # most blocks were never written
    np.testing.assert_array_equal(read(open_raw_array(path)), raw)


# A dataset written by tensorstore 0.1.86 (an independent N5 implementation): uint8, dimensions
# x, y, z = 5, 4, 3, blockSize 3, 2, 2, gzip; full-size edge blocks; values arange(60) in z, y, x.
TENSORSTORE_N5 = (
    "BTAvMC8wADAAAAADAAAAAwAAAAIAAAACH4sIAAAAAAAAA2NgZGJlYxcRFZOUkgYAIEB7mwwAAAAFMC8wLzEALAAAAAMAAAAD"
    "AAAAAgAAAAIfiwgAAAAAAAAD09DU0tXTZwADAMcV8WYMAAAABTAvMS8wADAAAAADAAAAAwAAAAIAAAACH4sIAAAAAAAAA+Pi"
    "5uEXEJSTV1BWUQUAmiHtMQwAAAAFMC8xLzEALAAAAAMAAAADAAAAAgAAAAIfiwgAAAAAAAADMzI2MbewZAADAPlk1HIMAAAA"
    "BTEvMC8wADAAAAADAAAAAwAAAAIAAAACH4sIAAAAAAAAA2NmYeDgZBCXYJCRZQAARgYWvAwAAAAFMS8wLzEAKwAAAAMAAAAD"
    "AAAAAgAAAAIfiwgAAAAAAAAD09ZhMDBkgAAAuDem+QwAAAAFMS8xLzAAMAAAAAMAAAADAAAAAgAAAAIfiwgAAAAAAAAD4+Vj"
    "EBJmUFRiUFNnAAB4kvpWDAAAAAUxLzEvMQArAAAAAwAAAAMAAAACAAAAAh+LCAAAAAAAAAMzNWOwsmaAAABDAzhUDAAAAA=="
)


def test_n5_written_by_tensorstore(tmp_path):
    path = tmp_path / "ts.n5" / "raw"
    path.mkdir(parents=True)
    blob, at = base64.b64decode(TENSORSTORE_N5), 0
    while at < len(blob):
        name = blob[at + 1 : at + 1 + blob[at]].decode()
        at += 1 + blob[at]
        size = int.from_bytes(blob[at : at + 2], "big")
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(blob[at + 2 : at + 2 + size])
        at += 2 + size
    (path / "attributes.json").write_text(json.dumps({
        "blockSize": [3, 2, 2], "compression": {"level": -1, "type": "gzip", "useZlib": False},
        "dataType": "uint8", "dimensions": [5, 4, 3], "resolution": [4, 4, 40], "offset": [0, 8, 40]}))  # fmt: skip
    volume = open_raw_array(path)
    assert tuple(volume.voxel_size) == (40, 4, 4) and tuple(volume.offset) == (40, 8, 0)
    np.testing.assert_array_equal(read(volume), np.arange(60, dtype=np.uint8).reshape(3, 4, 5))


def ome_image(tmp_path, version="0.4"):
    """Three levels: (40, 4, 4), (40, 8, 8) with a half-voxel shift, (40, 16, 16)."""
    full = data((6, 16, 16), seed=3)
    levels = [
        ("s0", full, (40, 4, 4), (80, 0, 0)),
        ("s1", full[:, ::2, ::2].copy(), (40, 8, 8), (80, 2, 2)),
        ("s2", full[:, ::4, ::4].copy(), (40, 16, 16), (80, 6, 6)),
    ]
    return write_ome(tmp_path / f"img{version}.zarr", levels, version=version), levels


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_picks_the_level_of_the_voxel_size(tmp_path, version):
    image, levels = ome_image(tmp_path, version)
    for name, expected, scale, translation in levels:
        volume = open_raw_array(image, voxel_size=scale)
        assert array_path(volume) == str(image / name)
        assert_volume(volume, expected, scale, translation)
    # without a voxel size: the first (finest) level
    assert array_path(open_raw_array(image)) == str(image / "s0")
    # a level array named directly takes its metadata from the image
    direct = open_raw_array(image / "s1", voxel_size=(40, 8, 8))
    assert tuple(direct.offset) == (80, 2, 2)


def test_ome_zarr_errors_are_one_line(tmp_path, capsys):
    image, _ = ome_image(tmp_path)
    with pytest.raises(SynfulError) as error:
        open_raw_array(image, voxel_size=(40, 2, 2))
    assert str(error.value) == (
        f"{image}: no OME-Zarr level has the network's voxel size [40, 2, 2] nm "
        "(levels: s0 [40, 4, 4], s1 [40, 8, 8], s2 [40, 16, 16])"
    )
    with pytest.raises(
        SynfulError,
        match=r"s1: raw voxel size \[40, 8, 8\] nm differs from the network's \[40, 4, 4\] nm",
    ):
        open_raw_array(image / "s1", voxel_size=(40, 4, 4))
    czyx = write_ome(tmp_path / "czyx.zarr", [("0", np.zeros((2, 3, 4, 5), np.uint8), (1, 40, 4, 4), (0,) * 4)],
                     axes=[{"name": "c", "type": "channel"}, *ome_axes()])  # fmt: skip
    with pytest.raises(SynfulError) as error:
        open_raw_array(czyx, voxel_size=(40, 4, 4))
    assert str(error.value) == f"{czyx}: raw must be a 3D (z, y, x) array, not 4D (c, z, y, x)"


def test_missing_and_unsupported_inputs(tmp_path):
    with pytest.raises(SynfulError, match="none.zarr: no such zarr store$"):
        open_raw_array(tmp_path / "none.zarr")
    write_zarr(
        tmp_path / "c.zarr" / "volumes" / "raw",
        data(),
        {"voxel_size": [40, 4, 4], "offset": [0, 0, 0]},
    )
    with pytest.raises(SynfulError) as error:
        open_raw_array(tmp_path / "c.zarr/volumes/rwa")
    assert str(error.value) == f"{tmp_path / 'c.zarr'}: missing array volumes/rwa"
    with pytest.raises(SynfulError, match="c.zarr: not a zarr array, N5 dataset, OME-Zarr image"):
        open_raw_array(
            tmp_path / "c.zarr"
        )  # no group metadata (zarr-python writes none above arrays)
    zarr.open_group(str(tmp_path / "c.zarr"), mode="a")
    with pytest.raises(SynfulError, match="c.zarr: missing array raw$"):
        open_raw_array(tmp_path / "c.zarr")  # a plain group: neither a sample store nor OME-Zarr
    write_zarr(tmp_path / "bare.zarr", data(), {})
    with pytest.raises(SynfulError, match="bare.zarr: array has no voxel size"):
        open_raw_array(tmp_path / "bare.zarr")
    write_zarr(tmp_path / "four.zarr", np.zeros((2, 3, 4, 5), np.uint8),
               {"voxel_size": [40, 4, 4], "offset": [0, 0, 0], "axis_names": ["c^", "z", "y", "x"]},
               chunks=(1, 3, 4, 5))  # fmt: skip
    with pytest.raises(
        SynfulError,
        match=r"four.zarr: raw must be a 3D \(z, y, x\) array, not 4D \(c\^, z, y, x\)$",
    ):
        open_raw_array(tmp_path / "four.zarr")
    write_n5(
        tmp_path / "lz.n5" / "raw", data(), (4, 4, 4), {"resolution": [4, 4, 40]}, compression="raw"
    )
    meta = json.loads((tmp_path / "lz.n5/raw/attributes.json").read_text())
    meta["compression"] = {"type": "lz4"}
    (tmp_path / "lz.n5/raw/attributes.json").write_text(json.dumps(meta))
    with pytest.raises(SynfulError, match="unsupported N5 compression 'lz4'"):
        open_raw_array(tmp_path / "lz.n5/raw")


# ------------------------------------------------------------------ prediction from such arrays


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny checkpoint and the float32 prediction of a sample store."""
    root = tmp_path_factory.mktemp("volumes")
    checkpoint, _ = make_checkpoint(root / "checkpoint_7.pt")
    sample, raw = make_sample(root / "sample.zarr")
    out = root / "ref.zarr"
    predict(checkpoint, sample, out, block_shape=(6, 20, 20), dtype="float32", progress=False)
    return checkpoint, raw, out


def assert_same_prediction(out, reference_out):
    for head in ("post_indicator", "partner_vectors"):
        ours, theirs = open_array(out, head), open_array(reference_out, head)
        assert (ours.voxel_size, ours.offset) == (theirs.voxel_size, theirs.offset)
        # rounding only: with other worker threads oneDNN can pick other float32 kernels, which
        # on some CPUs round differently (an AMD EPYC with AVX512: 4.6e-4 at most, 0.2% of the
        # values); a misread volume (wrong offset, axes or data) differs by far more
        np.testing.assert_allclose(read(ours), read(theirs), rtol=1e-2, atol=1e-3)


def test_prediction_from_zarr_v2_array_equals_sample_store(reference, tmp_path):
    checkpoint, raw, reference_out = reference
    write_zarr(tmp_path / "c.zarr" / "em" / "raw", raw, zarr_format=2,
               attrs={"voxel_size": list(VOXEL), "offset": list(RAW_OFFSET)})  # fmt: skip
    out = tmp_path / "pred.zarr"
    predict(
        checkpoint,
        tmp_path / "c.zarr/em/raw",
        out,
        block_shape=(6, 20, 20),
        dtype="float32",
        workers=2,
        scheduler="threads",
        progress=False,
    )
    assert_same_prediction(out, reference_out)


def test_prediction_from_n5_on_the_command_line_equals_sample_store(reference, tmp_path, capsys):
    checkpoint, raw, reference_out = reference
    path = tmp_path / "c.n5" / "raw"
    write_n5(
        path,
        raw,
        block=(4, 16, 16),
        attrs={"resolution": list(VOXEL[::-1]), "offset": list(RAW_OFFSET[::-1])},
    )
    out = tmp_path / "pred.zarr"
    code = main(["predict", str(checkpoint), str(path), str(out), "--block-shape", "6", "20", "20",
                 "--dtype", "float32", "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert_same_prediction(out, reference_out)


def test_prediction_from_ome_zarr_level_equals_sample_store(reference, tmp_path, capsys):
    checkpoint, raw, reference_out = reference
    coarse = raw[:, ::2, ::2].copy()
    image = write_ome(tmp_path / "img.zarr", [
        ("0", raw, VOXEL, RAW_OFFSET),
        ("1", coarse, (VOXEL[0], 2 * VOXEL[1], 2 * VOXEL[2]), RAW_OFFSET),
    ], version="0.5")  # fmt: skip
    out = tmp_path / "pred.zarr"
    predict(checkpoint, image, out, block_shape=(6, 20, 20), dtype="float32", progress=False)
    assert_same_prediction(out, reference_out)
    # only the coarse level: a one-line error naming the levels, nothing written
    only_coarse = write_ome(tmp_path / "coarse.zarr", [("1", coarse, (4, 4, 4), RAW_OFFSET)])
    code = main(["predict", str(checkpoint), str(only_coarse), str(tmp_path / "p.zarr"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == (
        f"synful: error: {only_coarse}: no OME-Zarr level has the network's voxel size "
        "[4, 2, 2] nm (levels: 1 [4, 4, 4])"
    )
    assert not (tmp_path / "p.zarr").exists()

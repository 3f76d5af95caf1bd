"""The prediction store module: encode/decode at the scale limits, create, open, and stores
written by the writer that came before it (kept here, frozen, as the fixture's writer)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from synful.errors import SynfulError
from synful.io import prediction_store
from synful.io.prediction_store import (
    DTYPES,
    PARTNER_VECTORS,
    POST_INDICATOR,
    create,
    decode,
    encode,
    head_scale,
    open_predictions,
    read_values,
    stored_dtype,
)
from synful.io.zarr_array import array_path, create_volume, open_array, read, storage
from synful.outputs import MARK_KEY, PREDICTIONS, is_kind, mark

SHAPE, VOXEL, OFFSET = (4, 8, 12), (40, 4, 4), (80, -8, 12)


# --- the writer before synful.io.prediction_store (synful/predict/output_store.py), frozen ----


def _old_encode(head, values, dtype):
    if dtype != "uint8":
        return values.astype(dtype)
    target = np.dtype(np.uint8 if head == POST_INDICATOR else np.int8)
    scale = 255.0 if head == POST_INDICATOR else 0.25
    info = np.iinfo(target)
    scaled = np.rint(values.astype(np.float32) * np.float32(scale))
    return np.clip(scaled, info.min, info.max).astype(target)


def _old_writer(path, values, dtype, attrs, chunks, shards):
    group = zarr.open_group(str(path), mode="w")
    if attrs:
        group.attrs.update(attrs)
    for head in (POST_INDICATOR, PARTNER_VECTORS):
        channels = 1 if head == PARTNER_VECTORS else 0
        lead = (3,) if channels else ()
        scale = 1.0 if dtype != "uint8" else 255.0 if head == POST_INDICATOR else 0.25
        stored = _old_encode(head, values[head], dtype)
        volume = create_volume(
            group, head, shape=lead + SHAPE, dtype=stored.dtype, voxel_size=VOXEL,
            offset=OFFSET, chunks=lead + chunks, shards=None if shards is None else lead + shards,
            channels=channels, attrs={"scale": scale},
        )  # fmt: skip
        storage(volume)[...] = stored
    return path


def _old_test_store(path, probabilities, vectors):
    """tests/_extract_stores.py's quantized store before: integer scale 255, clip then round."""
    group = zarr.open_group(str(path), mode="w")
    mask = np.round(np.clip(probabilities, 0, 1) * 255).astype(np.uint8)
    vec = np.clip(np.round(vectors * 0.25), -128, 127).astype(np.int8)
    for name, data, scale, channels in (
        (POST_INDICATOR, mask, 255, 0),
        (PARTNER_VECTORS, vec, 0.25, 1),
    ):
        volume = create_volume(
            group, name, shape=data.shape, dtype=data.dtype, voxel_size=VOXEL, offset=OFFSET,
            channels=channels, attrs={"scale": scale},
        )  # fmt: skip
        storage(volume)[...] = data
    return path


@pytest.fixture(scope="module")
def values():
    rng = np.random.default_rng(7)
    return {
        POST_INDICATOR: rng.uniform(-0.1, 1.1, SHAPE).astype(np.float32),
        PARTNER_VECTORS: rng.uniform(-600, 600, (3, *SHAPE)).astype(np.float32),
    }


def _files(root: Path) -> dict:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- encode / decode -----------------------------------------------------------------------


def test_uint8_encoding_rounds_and_clips_at_the_scale_limits():
    prob = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 254.5 / 255, 1.0, 1.5], np.float32)
    stored = encode(POST_INDICATOR, prob, "uint8")
    assert stored.dtype == np.uint8
    # rint ties to even: 0.5 -> 0, 1.5 -> 2, 127.5 -> 128, 254.5 -> 254
    np.testing.assert_array_equal(stored, [0, 0, 0, 2, 128, 254, 255, 255])
    vectors = np.array(
        [-1000, -514, -512, -510, -2, 2, 6, 37, 506, 508, 510, 512, 1000], np.float32
    )
    stored = encode(PARTNER_VECTORS, vectors, "uint8")
    assert stored.dtype == np.int8
    np.testing.assert_array_equal(
        stored, [-128, -128, -128, -128, 0, 0, 2, 9, 126, 127, 127, 127, 127]
    )
    np.testing.assert_array_equal(
        decode(stored, head_scale(PARTNER_VECTORS, "uint8")),
        np.array([-512, -512, -512, -512, 0, 0, 8, 36, 504, 508, 508, 508, 508], np.float32),
    )


def test_round_trip_within_half_a_step_inside_the_range():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, 100_000).astype(np.float32)
    back = decode(encode(POST_INDICATOR, prob, "uint8"), 255.0)
    assert back.dtype == np.float32
    assert np.abs(back - prob).max() <= 0.5 / 255 + 1e-7
    vectors = rng.uniform(-512, 508, 100_000).astype(np.float32)
    back = decode(encode(PARTNER_VECTORS, vectors, "uint8"), 0.25)
    assert np.abs(back - vectors).max() <= 2.0
    codes = np.arange(256).astype(np.uint8)  # every code survives decode -> encode
    np.testing.assert_array_equal(encode(POST_INDICATOR, decode(codes, 255.0), "uint8"), codes)
    codes = np.arange(-128, 128).astype(np.int8)
    np.testing.assert_array_equal(encode(PARTNER_VECTORS, decode(codes, 0.25), "uint8"), codes)


def test_encode_is_bit_identical_to_the_previous_writer():
    rng = np.random.default_rng(1)
    prob = np.concatenate([
        rng.uniform(-0.2, 1.2, 200_000).astype(np.float32),
        # the float32 neighbours of every half step
        *(np.nextafter((np.arange(256, dtype=np.float32) + 0.5) / 255, d) for d in (0, 1)),
    ])  # fmt: skip
    vectors = np.concatenate([
        rng.uniform(-700, 700, 200_000).astype(np.float32),
        *(np.nextafter((np.arange(-130, 130, dtype=np.float32) + 0.5) * 4, d) for d in (-1e4, 1e4)),
    ])  # fmt: skip
    for dtype in DTYPES:
        for head, data in ((POST_INDICATOR, prob), (PARTNER_VECTORS, vectors)):
            new, old = encode(head, data, dtype), _old_encode(head, data, dtype)
            assert new.dtype == old.dtype == stored_dtype(head, dtype)
            assert new.tobytes() == old.tobytes()


def test_floats_are_stored_as_they_are():
    vectors = np.array([-1000.5, 0.25, 3.0], np.float32)
    for dtype in ("float16", "float32"):
        assert head_scale(PARTNER_VECTORS, dtype) == head_scale(POST_INDICATOR, dtype) == 1.0
        stored = encode(PARTNER_VECTORS, vectors, dtype)
        assert stored.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(decode(stored, 1.0), stored.astype(np.float32))
    # without a scale: floats as they are (same dtype), integers as float32
    half = vectors.astype(np.float16)
    assert decode(half, None).dtype == np.float16
    np.testing.assert_array_equal(decode(half, None), half)
    assert decode(np.array([3], np.int16), None).dtype == np.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        stored_dtype(POST_INDICATOR, "int8")


def test_read_values_is_decode(tmp_path, values):
    path = _old_writer(tmp_path / "p.zarr", values, "uint8", None, SHAPE, None)
    volume = open_array(path, PARTNER_VECTORS)
    assert prediction_store.scale(volume) == 0.25
    np.testing.assert_array_equal(read_values(volume), decode(read(volume), 0.25))


# --- create / open --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, chunks, shards",
    [("uint8", (2, 4, 6), None), ("float16", (2, 4, 6), None), ("float32", (4, 8, 12), None),
     ("uint8", (1, 2, 3), (2, 4, 6))],
)  # fmt: skip
def test_create_writes_what_the_previous_writer_wrote(tmp_path, values, dtype, chunks, shards):
    attrs = {MARK_KEY: mark(PREDICTIONS, creation_id="0" * 32, recipe="ab" * 32)}
    old = _old_writer(tmp_path / "old.zarr", values, dtype, attrs, chunks, shards)
    volumes = create(
        tmp_path / "new.zarr", shape=SHAPE, voxel_size=VOXEL, offset=OFFSET, dtype=dtype,
        chunks=chunks, shards=shards, attrs=attrs,
    )  # fmt: skip
    assert list(volumes) == [POST_INDICATOR, PARTNER_VECTORS]
    for head, volume in volumes.items():
        volume[volume.roi] = encode(head, values[head], dtype)
    assert _files(old) == _files(tmp_path / "new.zarr")  # every byte, metadata and chunks

    # the old store opens as before: same arrays, attributes and values
    opened = open_predictions(old)
    for head in (POST_INDICATOR, PARTNER_VECTORS):
        volume = getattr(opened, head)
        assert array_path(volume) == str(old / head)
        assert volume.voxel_size == VOXEL and volume.offset == OFFSET
        assert volume.dtype == stored_dtype(head, dtype)
        assert prediction_store.scale(volume) == head_scale(head, dtype)
        np.testing.assert_array_equal(
            read_values(volume),
            decode(encode(head, values[head], dtype), prediction_store.scale(volume)),
        )


def test_old_test_helper_store_decodes_like_the_new_one(tmp_path, values):
    from _extract_stores import write_prediction_store

    prob = np.clip(values[POST_INDICATOR], 0, 1)
    vectors = (np.round(values[PARTNER_VECTORS] / 4) * 4).astype(np.float32)
    old = open_predictions(_old_test_store(tmp_path / "old.zarr", prob, vectors))
    new = open_predictions(
        write_prediction_store(tmp_path / "new.zarr", prob, vectors, offset=OFFSET, quantized=True)
    )
    assert old.post_indicator.attrs["scale"] == 255  # an integer scale attribute opens too
    for head in (POST_INDICATOR, PARTNER_VECTORS):
        a, b = getattr(old, head), getattr(new, head)
        assert (
            a.roi == b.roi
            and a.dtype == b.dtype
            and prediction_store.scale(a) == prediction_store.scale(b)
        )
        np.testing.assert_array_equal(read(a), read(b))


def test_create_marks_the_store_with_a_new_creation_id(tmp_path):
    ids = []
    for name in ("a.zarr", "b.zarr"):
        create(tmp_path / name, shape=SHAPE, voxel_size=VOXEL, offset=OFFSET, recipe="cd" * 32)
        attributes = json.loads((tmp_path / name / "zarr.json").read_text())["attributes"]
        synful = attributes[MARK_KEY]
        assert synful["kind"] == PREDICTIONS and synful["recipe"] == "cd" * 32
        ids.append(synful["creation_id"])
        assert is_kind(tmp_path / name, PREDICTIONS)
    assert ids[0] != ids[1] and all(len(i) == 32 for i in ids)
    # without a recipe: no mark (stores written by hand)
    create(
        tmp_path / "c.zarr", shape=SHAPE, voxel_size=VOXEL, offset=OFFSET, heads=(POST_INDICATOR,)
    )
    assert json.loads((tmp_path / "c.zarr" / "zarr.json").read_text())["attributes"] == {}
    assert not (tmp_path / "c.zarr" / PARTNER_VECTORS).exists()


def test_unscaled_float_stores_open_and_unscaled_integers_do_not(tmp_path, values):
    volumes = create(tmp_path / "f.zarr", shape=SHAPE, voxel_size=VOXEL, offset=OFFSET,
                     dtype="float32", scaled=False)  # fmt: skip
    assert all("scale" not in v.attrs for v in volumes.values())
    opened = open_predictions(tmp_path / "f.zarr")
    assert prediction_store.scale(opened.post_indicator) is None
    with pytest.raises(ValueError, match="needs a float dtype"):
        create(tmp_path / "u.zarr", shape=SHAPE, voxel_size=VOXEL, offset=OFFSET, scaled=False)
    group = zarr.open_group(str(tmp_path / "f.zarr"), mode="r+")
    create_volume(
        group, POST_INDICATOR, shape=SHAPE, dtype=np.uint8, voxel_size=VOXEL, offset=OFFSET
    )
    with pytest.raises(SynfulError, match="uint8 array without a scale attribute"):
        open_predictions(tmp_path / "f.zarr")


def test_open_errors_are_one_line(tmp_path):
    with pytest.raises(SynfulError, match="no such prediction store"):
        open_predictions(tmp_path / "missing.zarr")
    create(
        tmp_path / "m.zarr", shape=SHAPE, voxel_size=VOXEL, offset=OFFSET, heads=(POST_INDICATOR,)
    )
    with pytest.raises(SynfulError, match="not a prediction store: missing array partner_vectors"):
        open_predictions(tmp_path / "m.zarr")
    with pytest.raises(SynfulError, match="no such vector prediction store"):
        open_predictions(tmp_path / "m.zarr", tmp_path / "missing.zarr")


def test_the_names_have_one_owner_and_it_is_torch_free():
    import synful.extract.predictions as extract_predictions
    import synful.models as models
    import synful.predict.output_store as output_store

    assert models.POST_INDICATOR is prediction_store.POST_INDICATOR
    assert models.PARTNER_VECTORS is prediction_store.PARTNER_VECTORS
    assert extract_predictions.open_predictions is prediction_store.open_predictions
    assert output_store.DTYPES is prediction_store.DTYPES
    code = (
        "import sys, synful.io.prediction_store, synful.extract.predictions; "
        "sys.exit('torch' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

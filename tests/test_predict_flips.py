"""Test-time flips (predict --flips): each variant's outputs mapped back exactly, averaged."""

import numpy as np
import pytest
import torch
from _predict_fixtures import make_checkpoint, make_sample

from synful.errors import SynfulError
from synful.io import zarr_array
from synful.io.zarr_array import open_array
from synful.predict import flips as symmetries
from synful.predict import predict, predict_raw
from synful.settings.predict import PredictConfig

VOXEL = (40.0, 4.0, 4.0)
CROP = (1, 3, 3)


class PointsToBrightest(torch.nn.Module):
    """An exactly symmetric network: the indicator is a symmetric 3x3x3 mean of the input,
    every vector points (in nm, as the training's voxel samples do) to the brightest input
    voxel; the output is the input without ``CROP`` voxels on each side."""

    heads = ("post_indicator", "partner_vectors")

    def forward(self, x):
        shape = x.shape[2:]
        flat = int(torch.argmax(x[0, 0]))
        brightest = torch.tensor(np.unravel_index(flat, shape), dtype=torch.float32)
        grid = torch.stack(
            torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in shape), indexing="ij")
        )
        vectors = (brightest.view(3, 1, 1, 1) - grid) * torch.tensor(VOXEL).view(3, 1, 1, 1)
        logits = torch.nn.functional.avg_pool3d(x, 3, stride=1, padding=1) * 4
        crop = tuple(slice(c, n - c) for c, n in zip(CROP, shape))
        return {
            "post_indicator": logits[(..., *crop)],
            "partner_vectors": vectors[None][(..., *crop)],
        }


class RampInX(torch.nn.Module):
    """Not symmetric at all: the indicator logit grows along x, the vectors point along +x."""

    heads = ("post_indicator", "partner_vectors")

    def forward(self, x):
        ramp = torch.linspace(-3.0, 3.0, x.shape[-1]).expand_as(x)
        vectors = torch.zeros((1, 3, *x.shape[2:]))
        vectors[:, 2] = 100.0
        return {"post_indicator": ramp, "partner_vectors": vectors}


@pytest.fixture
def raw():
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 200, size=(7, 21, 21)).astype(np.uint8)
    raw[3, 5, 14] = 255  # one brightest voxel, off every axis of symmetry
    return raw


def test_variants_are_the_symmetries_of_the_square():
    # no variant twice, the identity first, the half turn second, all eight in eight
    assert len(set(symmetries.variants(8))) == 8
    assert symmetries.variants(1) == ((False, False, False),)
    assert symmetries.variants(2)[1] == (False, True, True)
    assert not symmetries.needs_square_voxels(2) and symmetries.needs_square_voxels(4)
    with pytest.raises(ValueError, match="flips"):
        symmetries.variants(3)


@pytest.mark.parametrize("variant", symmetries.VARIANTS)
def test_undo_inverts_apply(variant):
    tensor = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(1, 2, 3, 4, 5)
    moved = symmetries.apply(tensor, variant)
    assert not variant[0] or moved.shape[-2:] == (5, 4)
    assert torch.equal(symmetries.undo(moved, variant), tensor)


@pytest.mark.parametrize("flips", [2, 4, 8])
def test_a_symmetric_network_predicts_the_same_with_flips(raw, flips):
    """Every variant of an exactly symmetric network, mapped back, is the plain output: the
    arrays are flipped back and the vector components negated and swapped correctly."""
    model = PointsToBrightest()
    plain = predict_raw(model, raw)
    flipped = predict_raw(model, raw, flips=flips)
    vectors = plain["partner_vectors"]
    assert vectors.shape == (3, 5, 15, 15) and np.abs(vectors[1:]).max() > 40  # not trivial
    np.testing.assert_allclose(flipped["post_indicator"], plain["post_indicator"], atol=1e-6)
    np.testing.assert_allclose(flipped["partner_vectors"], vectors, atol=1e-4)
    # each variant alone maps back to the same (the mean could hide opposite errors)
    x = torch.from_numpy(raw.astype(np.float32))[None, None]
    for variant in symmetries.variants(flips):
        out = model(symmetries.apply(x, variant))
        back = symmetries.undo_vectors(out["partner_vectors"], variant)[0].numpy()
        np.testing.assert_allclose(back, vectors, atol=1e-4)


def test_flips_average_an_asymmetric_network(raw):
    model = RampInX()
    plain = predict_raw(model, raw)
    half_turn = predict_raw(model, raw, flips=2)
    # the mean of the ramp and its mirror: symmetric in x, 0.5 in the middle
    expected = (plain["post_indicator"] + plain["post_indicator"][..., ::-1]) / 2
    np.testing.assert_allclose(half_turn["post_indicator"], expected, atol=1e-6)
    assert np.ptp(plain["post_indicator"]) > 0.9
    # +x and its mirror (-x) cancel
    np.testing.assert_allclose(half_turn["partner_vectors"], 0.0, atol=1e-5)
    # with the transposes, one variant points along +y, one along -y
    four = predict_raw(model, raw, flips=4)
    np.testing.assert_allclose(four["partner_vectors"], 0.0, atol=1e-5)
    eight = predict_raw(model, raw, flips=8)
    np.testing.assert_allclose(eight["partner_vectors"], 0.0, atol=1e-5)
    probability = eight["post_indicator"]
    np.testing.assert_allclose(probability, np.swapaxes(probability, -1, -2), atol=1e-6)


def test_flips_is_a_checked_setting():
    assert PredictConfig().flips == 1
    with pytest.raises(SynfulError, match="--flips: unknown value 3, expected one of 1, 2, 4, 8"):
        PredictConfig(flips=3)


def test_predict_with_flips_is_another_store(tmp_path):
    """A real network through predict(): flips change the outputs, are part of the store's
    identity, and 4 or 8 (which swap y and x) refuse unequal y and x voxel sizes."""
    checkpoint, _ = make_checkpoint(tmp_path / "checkpoint_7.pt")
    sample, _ = make_sample(tmp_path / "sample.zarr")
    options = dict(dtype="float32", progress=False)
    predict(checkpoint, sample, tmp_path / "one.zarr", **options)
    predict(checkpoint, sample, tmp_path / "out.zarr", flips=4, **options)
    one = zarr_array.read(open_array(tmp_path / "one.zarr", "post_indicator"))
    four = zarr_array.read(open_array(tmp_path / "out.zarr", "post_indicator"))
    assert one.shape == four.shape and not np.allclose(one, four, atol=1e-3)
    # the complete store of 4 flips is not kept for 1
    predict(checkpoint, sample, tmp_path / "out.zarr", **options)
    again = zarr_array.read(open_array(tmp_path / "out.zarr", "post_indicator"))
    np.testing.assert_array_equal(again, one)

    wide, _ = make_checkpoint(tmp_path / "wide.pt", voxel_size=[4, 2, 3])
    wide_sample, _ = make_sample(tmp_path / "wide.zarr", voxel_size=(4, 2, 3))
    with pytest.raises(SynfulError, match="--flips 4 swaps y and x"):
        predict(wide, wide_sample, tmp_path / "wide_out.zarr", flips=4, **options)
    predict(wide, wide_sample, tmp_path / "wide_out.zarr", flips=2, **options)

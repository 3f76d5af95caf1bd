"""The U-Nets: shapes, heads, translation equivariance on the downsampling grid, the skip
alignment against the original's cropping."""

from pathlib import Path

import numpy as np
import pytest
import torch
from _original_unet import original_unet_features

from synful.models import (
    MODEL_DEFAULTS,
    PARTNER_VECTORS,
    POST_INDICATOR,
    build_model,
    normalize_raw,
)
from synful.models.unet import crop_factors, crop_plan, level_kernel_sizes
from synful.train.resume import recipe_setup
from synful.train.setup import TrainSetup, load_setup

SMALL = {"downsample_factors": [[1, 2, 2], [2, 2, 2]], "fmap_num": 4, "fmap_inc_factor": 2}
PUBLISHED = [[1, 3, 3], [1, 3, 3], [3, 3, 3]]
ROOT = Path(__file__).resolve().parents[1]


def test_original_setup_has_the_published_size():
    model = build_model({})  # defaults: the original [[1,3,3],[1,3,3],[3,3,3]], 4 x 5
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(10.7e6, rel=0.01)
    assert model.output_grid == (3, 27, 27)
    assert [m.out_channels for m in model.unet.encoder[-1] if hasattr(m, "out_channels")] == [
        500,
        500,
    ]


@pytest.mark.parametrize("network_type", ["vanilla", "dh_unet"])
def test_forward_shapes_match_output_shape(network_type):
    torch.manual_seed(0)
    model = build_model({**SMALL, "network_type": network_type})
    shape = model.valid_input_shape((12, 44, 44))
    assert all(s >= m for s, m in zip(shape, (12, 44, 44)))
    out_shape = model.output_shape(shape)
    with torch.no_grad():
        out = model(torch.zeros((2, 1, *shape)))
    assert set(out) == {POST_INDICATOR, PARTNER_VECTORS}
    assert tuple(out[POST_INDICATOR].shape) == (2, 1, *out_shape)
    assert tuple(out[PARTNER_VECTORS].shape) == (2, 3, *out_shape)
    assert all(o % g == 0 for o, g in zip(out_shape, model.output_grid))
    assert all((i - o) % 2 == 0 for i, o in zip(shape, out_shape))


def test_heads_follow_the_loss_scales():
    assert set(build_model({**SMALL, "d_loss_scale": 0})(torch.zeros(1, 1, 26, 44, 44))) == {
        POST_INDICATOR
    }
    assert set(build_model({**SMALL, "m_loss_scale": 0})(torch.zeros(1, 1, 26, 44, 44))) == {
        PARTNER_VECTORS
    }
    with pytest.raises(ValueError):
        build_model({**SMALL, "m_loss_scale": 0, "d_loss_scale": 0})
    with pytest.raises(ValueError):
        build_model({**SMALL, "network_type": "dh_unet", "d_loss_scale": 0})
    with pytest.raises(ValueError):
        build_model({**SMALL, "network_type": "resnet"})


def test_anisotropic_kernels_save_sections():
    iso = build_model(SMALL)
    aniso = build_model({**SMALL, "kernel_sizes": [[1, 3, 3], [1, 3, 3], [3, 3, 3]]})
    assert aniso.valid_input_shape((1, 1, 1))[0] < iso.valid_input_shape((1, 1, 1))[0]
    assert aniso.valid_input_shape((1, 1, 1))[1:] == iso.valid_input_shape((1, 1, 1))[1:]
    assert aniso.unet.encoder[0][0].kernel_size == (1, 3, 3)
    with pytest.raises(ValueError):
        build_model({**SMALL, "kernel_sizes": [[1, 3, 3]]})
    with pytest.raises(ValueError):
        build_model({**SMALL, "kernel_sizes": [[2, 3, 3], [3, 3, 3], [3, 3, 3]]})


def test_dh_unet_has_two_decoders_and_more_parameters():
    vanilla = build_model(SMALL)
    dh = build_model({**SMALL, "network_type": "dh_unet"})
    assert len(dh.unet.decoders) == 2 and len(vanilla.unet.decoders) == 1
    assert sum(p.numel() for p in dh.parameters()) > sum(p.numel() for p in vanilla.parameters())


def test_invalid_input_shapes_raise_value_error():
    model = build_model(SMALL)
    valid = model.valid_input_shape((10, 40, 40))
    model.output_shape(valid)
    with pytest.raises(ValueError):
        model.output_shape((valid[0], valid[1] + 1, valid[2]))
    with pytest.raises(ValueError):
        model.output_shape((4, 4, 4))
    with pytest.raises(ValueError):
        model(torch.zeros(1, 1, valid[0] + 1, valid[1], valid[2]))
    # every size the search skipped is invalid
    for size in range(10, valid[1]):
        with pytest.raises(ValueError):
            model.output_shape((valid[0], size, valid[2]))


def test_valid_shapes_are_periodic_in_the_grid():
    model = build_model(SMALL)
    base = model.valid_input_shape((1, 1, 1))
    grid = model.output_grid
    bigger = tuple(b + 3 * g for b, g in zip(base, grid))
    assert model.valid_input_shape(bigger) == bigger
    assert tuple(o + 3 * g for o, g in zip(model.output_shape(base), grid)) == model.output_shape(
        bigger
    )


def test_d_scale_divides_the_vector_head():
    torch.manual_seed(1)
    plain = build_model(SMALL)
    scaled = build_model({**SMALL, "d_scale": 4.0})
    scaled.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 26, 44, 44)
    with torch.no_grad():
        torch.testing.assert_close(plain(x)[PARTNER_VECTORS] / 4.0, scaled(x)[PARTNER_VECTORS])


@pytest.mark.parametrize(
    "extra",
    [
        {"network_type": "vanilla"},
        {"network_type": "dh_unet"},
        {
            "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
            "downsample_factors": [[1, 2, 2], [3, 2, 2]],
        },
        {"network_type": "dh_unet", "normalization": "batch"},
        {"downsample_factors": PUBLISHED, "fmap_num": 2, "skip_alignment": "geometric"},
        {
            "network_type": "dh_unet",
            "normalization": "batch",
            "skip_alignment": "geometric",
            "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
            "downsample_factors": [[1, 2, 2], [3, 2, 2]],
        },
    ],
)
def test_blockwise_equals_whole_volume_on_the_grid(extra):
    """Outputs of blocks whose offsets are multiples of output_grid tile the whole output."""
    torch.manual_seed(2)
    model = build_model({**SMALL, **extra})
    with torch.no_grad():  # training-mode passes move BatchNorm's running statistics
        for _ in range(3):
            model(torch.randn(1, 1, *model.valid_input_shape((10, 40, 40))) * 2 + 0.5)
    model.eval()
    grid = np.array(model.output_grid)
    block_in = np.array(model.valid_input_shape((10, 40, 40)))
    block_out = np.array(model.output_shape(block_in))
    whole_in = block_in + block_out  # room for a second block along every axis
    assert model.valid_input_shape(whole_in) == tuple(whole_in)
    x = torch.randn(1, 1, *whole_in)
    with torch.no_grad():
        whole = model(x)
        assert all(float(v.std()) > 0 for v in whole.values())  # not a dead network
        for shift in [(0, 0, 0), tuple(block_out), (0, grid[1], grid[2]), (grid[0], 0, grid[2])]:
            shift = np.array(shift)
            sl = tuple(slice(int(s), int(s + b)) for s, b in zip(shift, block_in))
            block = model(x[(slice(None), slice(None), *sl)])
            out_sl = tuple(slice(int(s), int(s + b)) for s, b in zip(shift, block_out))
            for key, value in block.items():
                torch.testing.assert_close(value, whole[key][(slice(None), slice(None), *out_sl)])


def test_batch_normalization_layers():
    plain = build_model(SMALL)
    normed = build_model({**SMALL, "normalization": "batch"})
    norms = [m for m in normed.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    convs = [m for m in normed.modules() if isinstance(m, torch.nn.Conv3d)]
    assert (
        len(norms) == sum(isinstance(m, torch.nn.Conv3d) for m in plain.modules()) - 2
    )  # not the heads
    assert all(m.bias is None for m in convs if m.kernel_size != (1, 1, 1))
    with pytest.raises(ValueError, match="normalization"):
        build_model({**SMALL, "normalization": "group"})


@pytest.mark.parametrize("alignment", ["centre_crop", "geometric"])
def test_off_grid_shift_changes_the_output(alignment):
    """The equivariance is only on the grid: a one-voxel in-plane shift gives other values."""
    torch.manual_seed(3)
    model = build_model({**SMALL, "skip_alignment": alignment}).eval()
    block_in = np.array(model.valid_input_shape((10, 40, 40)))
    block_out = np.array(model.output_shape(block_in))
    x = torch.randn(1, 1, *(block_in + block_out))
    with torch.no_grad():
        whole = model(x)[POST_INDICATOR]
        block = model(x[:, :, : block_in[0], 1 : 1 + block_in[1], : block_in[2]])[POST_INDICATOR]
    ref = whole[:, :, : block_out[0], 1 : 1 + block_out[1], : block_out[2]]
    assert float(ref.std()) > 0
    assert not torch.allclose(block, ref)


def test_normalize_raw():
    raw = np.array([0, 255, 51], dtype=np.uint8)
    out = normalize_raw(raw)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-1.0, 1.0, 51 / 255 * 2 - 1], rtol=1e-6)


def _convs(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv3d | torch.nn.ConvTranspose3d)]


def _fans(module):
    """TF's fans of a conv kernel: kernel volume x input / output channels."""
    volume = int(np.prod(module.kernel_size))
    if isinstance(module, torch.nn.ConvTranspose3d):
        return volume * module.out_channels, volume * module.in_channels
    return volume * module.in_channels, volume * module.out_channels


def test_glorot_init_is_the_tf_default_everywhere():
    """Glorot-uniform U(-a, a), a = sqrt(6 / (fan_in + fan_out)), std a / sqrt(3) =
    sqrt(2 / (fan_in + fan_out)); zero biases; the 1x1x1 heads included."""
    torch.manual_seed(4)
    model = build_model({**SMALL, "init": "glorot", "fmap_num": 8})
    assert model.init == "glorot"
    convs = _convs(model)
    assert model.mask_head in convs and model.vector_head in convs
    checked = 0
    for module in convs:
        fan_in, fan_out = _fans(module)
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        weight = module.weight.detach()
        assert float(weight.abs().max()) <= limit
        assert float(module.bias.detach().abs().max()) == 0.0
        if weight.numel() >= 5000:
            assert float(weight.std()) == pytest.approx((2.0 / (fan_in + fan_out)) ** 0.5, rel=0.05)
            assert float(weight.abs().max()) > 0.95 * limit  # uniform, not normal
            checked += 1
    assert checked >= 5


def test_he_init_stays_the_default():
    torch.manual_seed(5)
    model = build_model({**SMALL, "fmap_num": 8})
    assert model.init == "he"
    checked = 0
    for module in _convs(model.unet):
        weight = module.weight.detach()
        fan_in = weight[0].numel()  # PyTorch's fan_in (for a transposed conv: out x kernel)
        assert float(module.bias.detach().abs().max()) == 0.0
        if weight.numel() >= 5000:
            assert float(weight.std()) == pytest.approx((2.0 / fan_in) ** 0.5, rel=0.05)
            checked += 1
    assert checked >= 5
    # the heads keep PyTorch's default (uniform bias), as before the init key existed
    assert float(model.mask_head.bias.detach().abs().max()) > 0
    with pytest.raises(ValueError, match="init"):
        build_model({**SMALL, "init": "xavier"})


def test_mask_activation_follows_the_mask_loss():
    assert build_model(SMALL).mask_activation == "sigmoid"
    assert build_model({**SMALL, "mask_loss": "ce"}).mask_activation == "sigmoid"
    model = build_model({**SMALL, "mask_loss": "mse"})
    assert model.mask_activation == "clip"
    linear = torch.tensor([-2.0, -0.1, 0.0, 0.3, 1.0, 1.7])
    torch.testing.assert_close(
        model.mask_probability(linear), torch.tensor([0.0, 0.0, 0.0, 0.3, 1.0, 1.0])
    )
    torch.testing.assert_close(build_model(SMALL).mask_probability(linear), torch.sigmoid(linear))
    with pytest.raises(ValueError, match="mask_loss"):
        build_model({**SMALL, "mask_loss": "l1"})


# --- skip alignment: against the original's cropping ----------------------------------------


def _centre(array, shape):
    """The centre of ``array``'s last three axes, of ``shape``; the margins must be even."""
    margins = [a - s for a, s in zip(array.shape[-3:], shape)]
    assert all(m >= 0 and m % 2 == 0 for m in margins), (tuple(array.shape), shape)
    return array[(..., *(slice(m // 2, m // 2 + s) for m, s in zip(margins, shape)))]


def _random_unet(extra, seed):
    torch.manual_seed(seed)
    model = build_model({**SMALL, **extra}).eval()
    for module in model.modules():  # non-zero biases: every crop shows in the output
        if isinstance(module, torch.nn.Conv3d | torch.nn.ConvTranspose3d):
            torch.nn.init.uniform_(module.bias, -0.05, 0.05)
    return model


ALIGNMENT_CASES = [
    {"downsample_factors": PUBLISHED, "fmap_num": 2},
    {"downsample_factors": PUBLISHED, "fmap_num": 2, "network_type": "dh_unet"},
    {
        "downsample_factors": [[3, 3, 3], [3, 3, 3]],
        "kernel_sizes": [[3, 3, 3], [5, 5, 5], [3, 3, 3]],
        "fmap_num": 2,
    },
    {
        "downsample_factors": [[1, 2, 2], [3, 2, 2]],
        "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
    },
    {},
]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra", ALIGNMENT_CASES)
def test_geometric_alignment_is_the_original_centre_cropped(extra):
    """For an input both networks accept, the original's output centre-cropped to ours equals
    ours with ``geometric`` (up to float rounding); ``centre_crop`` (synful's before the key)
    computes another function where factors of 3 repeat."""
    model = _random_unet({**extra, "skip_alignment": "geometric"}, seed=6)
    legacy = build_model({**SMALL, **extra, "skip_alignment": "centre_crop"}).eval()
    legacy.load_state_dict(model.state_dict())
    shape = model.valid_input_shape((20, 60, 60))
    assert legacy.valid_input_shape((20, 60, 60)) == shape
    x = torch.rand(1, 1, *shape) * 2 - 1
    with torch.no_grad():
        original = original_unet_features(model.unet, x)
        ours, theirs = model.unet(x), legacy.unet(x)
    repeated_threes = extra.get("downsample_factors") in (PUBLISHED, [[3, 3, 3], [3, 3, 3]])
    for o, g, c in zip(original, ours, theirs):
        assert g.shape == c.shape and tuple(g.shape[-3:]) == model.output_shape(shape)
        assert float(g.abs().max()) > 0
        # equal up to float rounding: oneDNN picks convolution kernels by input size, and on
        # some CPUs (AVX512 without AMX) the differently sized inputs round differently
        assert _close(_centre(o, g.shape[-3:]), g)
        assert _close(_centre(o, c.shape[-3:]), c) != repeated_threes
    if repeated_threes:  # the finding: legacy differs from the original by more than rounding
        assert float((_centre(original[0], theirs[0].shape[-3:]) - theirs[0]).abs().max()) > 1e-3


def test_geometric_crops_stay_inside_and_the_output_centred():
    """The geometric alignment accepts the inputs of centre_crop (same output shapes, crops
    inside the maps), except for networks where no input gives a centred output (kernels other
    than 3 with odd factors): then none, and that is a clear error."""
    for factors, kernels, any_valid in [
        ((1, 1, 3), (3, 3, 3, 3), True),
        ((3, 3, 3), (3, 3, 3, 3), True),
        ((1, 1, 2), (1, 1, 3, 3), True),
        ((3, 3), (3, 5, 3), True),
        ((2, 3), (1, 5, 3), False),
        ((2, 5), (1, 3, 1), False),
    ]:
        valid = accepted = 0
        for size in range(1, 1000):
            try:
                output, _ = crop_plan(size, factors, kernels=kernels)
            except ValueError:
                with pytest.raises(ValueError):
                    crop_plan(size, factors, kernels=kernels, alignment="geometric")
                continue
            if (size - output) % 2:
                continue
            valid += 1
            try:
                geometric, plan = crop_plan(size, factors, kernels=kernels, alignment="geometric")
            except ValueError as exc:
                assert "cannot be centred" in str(exc)
                continue
            accepted += 1
            assert geometric == output
            assert all(up >= 0 and skip >= 0 for up, skip in plan)
        assert valid > 5 and accepted == (valid if any_valid else 0), (factors, kernels)
    exotic = {
        "downsample_factors": [[2, 2, 2], [5, 5, 5]],
        "kernel_sizes": [[1, 1, 1], [3, 3, 3], [1, 1, 1]],
    }
    build_model({**exotic, "skip_alignment": "centre_crop"}).valid_input_shape((30, 30, 30))
    with pytest.raises(ValueError, match="no valid input size"):
        build_model({**exotic, "skip_alignment": "geometric"}).valid_input_shape((30, 30, 30))


@pytest.mark.parametrize("path", ["config/setups/demo.yaml", ".test/config/setups/tiny.yaml"])
def test_demo_and_tiny_are_the_same_network_with_either_alignment(path):
    """The demo and the test setup keep centre_crop (what they were trained and measured with);
    with their power-of-2 factors the geometric alignment crops at the same places."""
    setup = load_setup(ROOT / path)
    assert setup.skip_alignment == "centre_crop"
    factors = setup.downsample_factors
    kernels = level_kernel_sizes(setup.kernel_sizes, len(factors) + 1)
    crops = crop_factors(factors)
    for axis in range(3):
        arguments = (
            [f[axis] for f in factors],
            [c[axis] for c in crops],
            [k[axis] for k in kernels],
        )
        compared = 0
        for size in range(1, 300):
            try:
                legacy = crop_plan(size, *arguments)
            except ValueError:
                continue
            if (size - legacy[0]) % 2 == 0:
                assert crop_plan(size, *arguments, alignment="geometric") == legacy
                compared += 1
        assert compared > 10


def test_skip_alignment_defaults():
    """Setups without the key (checkpoints written before it) build centre_crop; new training
    setups default to geometric and store the key; at centre_crop the key leaves the training
    recipe as it was before the key existed."""
    assert MODEL_DEFAULTS["skip_alignment"] == "centre_crop"
    assert build_model(SMALL).skip_alignment == "centre_crop"
    assert TrainSetup().skip_alignment == "geometric"
    assert TrainSetup().to_dict()["skip_alignment"] == "geometric"
    with pytest.raises(ValueError, match="skip_alignment"):
        build_model({**SMALL, "skip_alignment": "centred"})
    old = {k: v for k, v in TrainSetup().to_dict().items() if k != "skip_alignment"}
    assert recipe_setup({**old, "skip_alignment": "centre_crop"}) == recipe_setup(old)
    assert recipe_setup({**old, "skip_alignment": "geometric"}) != recipe_setup(old)

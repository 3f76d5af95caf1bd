"""The U-Nets: shapes, heads, translation equivariance on the downsampling grid."""

import numpy as np
import pytest
import torch

from synful.models import PARTNER_VECTORS, POST_INDICATOR, build_model, normalize_raw

SMALL = {"downsample_factors": [[1, 2, 2], [2, 2, 2]], "fmap_num": 4, "fmap_inc_factor": 2}


def test_original_setup_has_the_published_size():
    model = build_model({})  # defaults: the original [[1,3,3],[1,3,3],[3,3,3]], 4 x 5
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(10.7e6, rel=0.01)
    assert model.output_grid == (3, 27, 27)
    assert [m.out_channels for m in model.unet.encoder[-1] if hasattr(m, "out_channels")] == [500, 500]


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
    assert set(build_model({**SMALL, "d_loss_scale": 0})(torch.zeros(1, 1, 26, 44, 44))) == {POST_INDICATOR}
    assert set(build_model({**SMALL, "m_loss_scale": 0})(torch.zeros(1, 1, 26, 44, 44))) == {PARTNER_VECTORS}
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
    assert tuple(o + 3 * g for o, g in zip(model.output_shape(base), grid)) == model.output_shape(bigger)


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
        {"kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "downsample_factors": [[1, 2, 2], [3, 2, 2]]},
        {"network_type": "dh_unet", "normalization": "batch"},
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
    assert len(norms) == sum(isinstance(m, torch.nn.Conv3d) for m in plain.modules()) - 2  # not the heads
    assert all(m.bias is None for m in convs if m.kernel_size != (1, 1, 1))
    with pytest.raises(ValueError, match="normalization"):
        build_model({**SMALL, "normalization": "group"})


def test_off_grid_shift_changes_the_output():
    """The equivariance is only on the grid: a one-voxel in-plane shift gives other values."""
    torch.manual_seed(3)
    model = build_model(SMALL).eval()
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
    torch.testing.assert_close(model.mask_probability(linear), torch.tensor([0.0, 0.0, 0.0, 0.3, 1.0, 1.0]))
    torch.testing.assert_close(build_model(SMALL).mask_probability(linear), torch.sigmoid(linear))
    with pytest.raises(ValueError, match="mask_loss"):
        build_model({**SMALL, "mask_loss": "l1"})

"""The published setups (p_setup05, 10, 45, 51, 52, 54) at their real size, on the meta device.

The parameter counts are derived here, independently of synful.models, from the architecture
of the original U-Net (funlib.learn.tensorflow @ 0712fee, as the published graphs use it):

- levels ``L = len(downsample_factors) + 1 = 4``, feature maps ``f_l = fmap_num * fmap_inc_factor**l``;
- encoder (shared, bottom level included): per level two 3x3x3 convolutions with bias,
  ``1 -> f_0 -> f_0`` at the top and ``f_(l-1) -> f_l -> f_l`` below;
- decoder (one for vanilla, one per head for dh_unet), per level ``l < L - 1``: a transposed
  convolution with kernel = stride = the factor (``v_l`` = its volume) from ``f_(l+1)`` to
  ``f_l`` with bias, then two 3x3x3 convolutions with bias, ``2 f_l -> f_l -> f_l`` (the input
  is the concatenation of the skip connection and the upsampled maps);
- 1x1x1 heads with bias on the top level's ``f_0`` maps: 3 channels for the vectors, 1 for
  the mask, only for a head whose loss scale is > 0 (the original builds both and drops the
  unused one from the graph's outputs).

Derived counts (and measured on the model):

| setup | network | fmap_num x inc | heads | parameters |
|---|---|---|---|---|
| p_setup05 | vanilla | 4 x 5 | vectors | 10,651,551 |
| p_setup10 | vanilla | 12 x 5 | vectors | 95,853,495 |
| p_setup45 | dh_unet | 4 x 5 | mask + vectors | 12,864,344 |
| p_setup51 | dh_unet | 12 x 5 | mask + vectors | 115,766,368 |
| p_setup52 | vanilla | 12 x 5 | mask | 95,853,469 |
| p_setup54 | vanilla | 4 x 5 | mask | 10,651,541 |

Shapes: training 48x484x484 -> 6x216x216 (the published 42x430x430 -> 6x218x218 is not a valid
input for our crop-to-factor U-Net), prediction 90x1132x1132 -> 48x864x864, with the skip
connections aligned as in the original (``skip_alignment: geometric``).
"""

from pathlib import Path

import pytest
import torch

from synful.models import PARTNER_VECTORS, POST_INDICATOR, build_model, model_heads
from synful.train.setup import load_setup

SETUPS = Path(__file__).resolve().parents[1] / "config" / "setups"

#: setup -> (network_type, fmap_num, mask head, vector head, mask_loss, parameters)
PAPER = {
    "p_setup05": ("vanilla", 4, False, True, "ce", 10_651_551),
    "p_setup10": ("vanilla", 12, False, True, "ce", 95_853_495),
    "p_setup45": ("dh_unet", 4, True, True, "mse", 12_864_344),
    "p_setup51": ("dh_unet", 12, True, True, "ce", 115_766_368),
    "p_setup52": ("vanilla", 12, True, False, "ce", 95_853_469),
    "p_setup54": ("vanilla", 4, True, False, "mse", 10_651_541),
}
FACTORS = [[1, 3, 3], [1, 3, 3], [3, 3, 3]]
TRAIN_INPUT, TRAIN_OUTPUT = (48, 484, 484), (6, 216, 216)
PREDICT_INPUT, PREDICT_OUTPUT = (90, 1132, 1132), (48, 864, 864)
PUBLISHED_INPUT = (42, 430, 430)


def unet_parameters(fmap_num, fmap_inc_factor, factors, decoders, mask_head, vector_head):
    """The parameter count of the original U-Net with its 1x1x1 heads (module docstring)."""
    levels = len(factors) + 1
    fmaps = [fmap_num * fmap_inc_factor**level for level in range(levels)]

    def conv(n_in, n_out, kernel_volume=27):
        return kernel_volume * n_in * n_out + n_out

    encoder = sum(
        conv(1 if level == 0 else fmaps[level - 1], fmaps[level]) + conv(fmaps[level], fmaps[level])
        for level in range(levels)
    )
    decoder = 0
    for level in range(levels - 1):
        volume = factors[level][0] * factors[level][1] * factors[level][2]
        decoder += conv(fmaps[level + 1], fmaps[level], volume)  # transposed conv, kernel = stride
        decoder += conv(2 * fmaps[level], fmaps[level]) + conv(fmaps[level], fmaps[level])
    heads = (conv(fmaps[0], 1, 1) if mask_head else 0) + (
        conv(fmaps[0], 3, 1) if vector_head else 0
    )
    return encoder + decoders * decoder + heads


@pytest.fixture(scope="module", params=sorted(PAPER))
def paper(request):
    name = request.param
    setup = load_setup(SETUPS / f"{name}.yaml")
    with torch.device("meta"):  # no memory for the weights (the big ones have ~100 M)
        model = build_model(setup.to_dict())
    return name, setup, model


def test_formula_gives_the_original_setup01_size():
    # the 10.7 M of the original setup01 network (4 x 5, one decoder, mask head)
    assert unet_parameters(4, 5, FACTORS, 1, True, False) == 10_651_541


def test_training_and_prediction_shapes(paper):
    name, setup, model = paper
    assert tuple(setup.input_shape) == TRAIN_INPUT
    assert tuple(setup.predict_input_shape) == PREDICT_INPUT
    assert setup.downsample_factors == FACTORS
    assert model.output_shape(TRAIN_INPUT) == TRAIN_OUTPUT
    assert model.output_shape(PREDICT_INPUT) == PREDICT_OUTPUT
    # the forward pass itself (meta tensors: shapes only)
    for shape, expected in ((TRAIN_INPUT, TRAIN_OUTPUT), (PREDICT_INPUT, PREDICT_OUTPUT)):
        out = model(torch.empty(1, 1, *shape, device="meta"))
        assert all(tuple(v.shape[2:]) == expected for v in out.values())
    # 48x484x484 is the smallest valid input with an output of at least 6x216x216: on every
    # axis the next smaller valid size gives a smaller output (outputs grow with the input)
    for axis in range(3):
        shape = list(TRAIN_INPUT)
        for size in range(TRAIN_INPUT[axis] - 1, 0, -1):
            shape[axis] = size
            try:
                output = model.output_shape(shape)
            except ValueError:
                continue
            assert output[axis] < TRAIN_OUTPUT[axis]
            break
        else:
            pytest.fail(f"no valid input below {TRAIN_INPUT} on axis {axis}")
    with pytest.raises(ValueError, match="not valid"):
        model.output_shape(PUBLISHED_INPUT)
    with pytest.raises(ValueError):
        model(torch.empty(1, 1, *PUBLISHED_INPUT, device="meta"))


def test_heads_and_mask_output(paper):
    name, setup, model = paper
    network_type, _, mask_head, vector_head, mask_loss, _ = PAPER[name]
    assert setup.network_type == network_type
    assert model_heads(setup.to_dict()) == (mask_head, vector_head)
    expected = tuple(
        k for k, on in ((POST_INDICATOR, mask_head), (PARTNER_VECTORS, vector_head)) if on
    )
    assert model.heads == expected
    out = model(torch.empty(1, 1, *TRAIN_INPUT, device="meta"))
    assert set(out) == set(expected)
    if vector_head:
        assert out[PARTNER_VECTORS].shape[1] == 3
    if mask_head:
        assert out[POST_INDICATOR].shape[1] == 1
        assert setup.mask_loss == mask_loss
        assert model.mask_activation == {"ce": "sigmoid", "mse": "clip"}[mask_loss]


def test_parameter_count_matches_the_original_architecture(paper):
    name, setup, model = paper
    network_type, fmap_num, mask_head, vector_head, _, count = PAPER[name]
    assert (setup.fmap_num, setup.fmap_inc_factor) == (fmap_num, 5)
    derived = unet_parameters(
        fmap_num, 5, FACTORS, 2 if network_type == "dh_unet" else 1, mask_head, vector_head
    )
    assert derived == count
    assert sum(p.numel() for p in model.parameters()) == count


def test_float32_glorot_and_the_original_skip_alignment(paper):
    name, setup, model = paper
    assert setup.mixed_precision is False
    assert setup.init == "glorot" and model.init == "glorot"
    assert setup.skip_alignment == "geometric" and model.skip_alignment == "geometric"


@pytest.mark.parametrize("name", ["setup01", "setup02", "setup03"])
def test_original_public_setups_are_float32_glorot_on_the_same_window(name):
    setup = load_setup(SETUPS / f"{name}.yaml")
    assert setup.mixed_precision is False and setup.init == "glorot"
    assert setup.skip_alignment == "geometric"
    assert tuple(setup.input_shape) == TRAIN_INPUT
    assert build_model(setup.to_dict()).output_shape(TRAIN_INPUT) == TRAIN_OUTPUT


def test_st_pairs_share_size_and_iterations():
    """p_setup52 + p_setup10 and p_setup54 + p_setup05: mask and vector network of one size."""
    for mask, vectors in (("p_setup52", "p_setup10"), ("p_setup54", "p_setup05")):
        m, v = load_setup(SETUPS / f"{mask}.yaml"), load_setup(SETUPS / f"{vectors}.yaml")
        assert (m.fmap_num, m.fmap_inc_factor) == (v.fmap_num, v.fmap_inc_factor)
        assert (m.m_loss_scale, m.d_loss_scale, v.m_loss_scale, v.d_loss_scale) == (1, 0, 0, 1)
        assert m.network_type == v.network_type == "vanilla"

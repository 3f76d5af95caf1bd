"""The original U-Net's decoder (funlib.learn.tensorflow @ 0712fee, models/unet.py) on
synful's modules, written from its description, for tests that compare against it."""

import torch

from synful.models.unet import centre_crop


def original_unet_features(unet, x: torch.Tensor) -> list[torch.Tensor]:
    """One feature map per decoder of ``unet`` (synful's modules) computed with the original's
    cropping: the upsampled map is not cropped, the skip connection is centre-cropped to it
    (``crop``: begin ``(have - want) // 2``) and concatenated first."""
    skips, y = [], x
    for level, conv in enumerate(unet.encoder):
        y = conv(y)
        if level < len(unet.pools):
            skips.append(y)
            y = unet.pools[level](y)
    outputs = []
    for decoder in unet.decoders:
        z = y
        for level in reversed(range(len(skips))):
            up = decoder["ups"][level]
            upsampled = up.activation(up.up(z))
            skip = centre_crop(skips[level], upsampled.shape[-3:])
            z = decoder["convs"][level](torch.cat([skip, upsampled], 1))
        outputs.append(z)
    return outputs

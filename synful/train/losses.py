"""Training losses (the original's ``mknet``), on torch tensors.

- mask: weighted sigmoid cross-entropy on the logits (``ce``), or weighted squared error of
  the head's **linear** output against the 0/1 target (``mse``; the README's "MSE" models: the
  published p_setup54 / p_setup45 graphs output the linear head, ``Reshape_2:0``, where the CE
  graphs output ``Sigmoid:0``, so their MSE had no sigmoid); both sum over voxels of
  weight x loss divided by the number of voxels (TF's SUM_BY_NONZERO_WEIGHTS, all weights > 0);
- vectors: squared error between prediction and target, both multiplied by ``d_scale`` (as
  the original trains on scaled targets; nm^2 when d_scale = 1), averaged over the masked
  voxels x 3 components; 0 when the mask is empty;
- total: ``m_loss_scale * mask + d_loss_scale * vectors``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import PARTNER_VECTORS, POST_INDICATOR


def mask_loss(
    output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, kind: str = "ce"
) -> torch.Tensor:
    """Weighted mask loss over all voxels of the mask head's linear ``output`` (``kind``:
    ``"ce"``, the output read as logits, or ``"mse"``, the output regressed directly)."""
    output = output.float()
    if kind == "ce":
        per_voxel = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    elif kind == "mse":
        per_voxel = (output - target) ** 2
    else:
        raise ValueError(f"unknown mask loss {kind!r}")
    return (weights * per_voxel).sum() / per_voxel.numel()


def vector_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, d_scale: float = 1.0
) -> torch.Tensor:
    """Masked mean squared error of (d_scale x) vectors: (B, 3, ...) against (B, 3, ...), mask (B, 1, ...)."""
    difference = (prediction.float() - target) * d_scale
    masked = mask.expand_as(difference)
    count = masked.sum()
    if count == 0:
        return difference.sum() * 0.0
    return (masked * difference**2).sum() / count


def training_loss(outputs: dict, batch: dict, setup) -> tuple[torch.Tensor, dict[str, float]]:
    """The combined loss and its parts (as floats) for a batch of tensors on the device."""
    total = torch.zeros((), device=batch["raw"].device)
    parts = {}
    if POST_INDICATOR in outputs and setup.m_loss_scale > 0:
        loss = mask_loss(
            outputs[POST_INDICATOR], batch["post_indicator"], batch["loss_weights"], setup.mask_loss
        )
        total = total + setup.m_loss_scale * loss
        parts["mask_loss"] = float(loss.detach())
    if PARTNER_VECTORS in outputs and setup.d_loss_scale > 0:
        loss = vector_loss(
            outputs[PARTNER_VECTORS], batch["partner_vectors"], batch["vector_mask"], setup.d_scale
        )
        total = total + setup.d_loss_scale * loss
        parts["vector_loss"] = float(loss.detach())
    parts["loss"] = float(total.detach())
    return total, parts

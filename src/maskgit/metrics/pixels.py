"""Per-image pixel errors inside a region (the holes, or the known pixels) of uint8 images."""

from __future__ import annotations

import torch
from torch import Tensor


def region_l1_psnr(images: Tensor, truth: Tensor, region: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image mean absolute error (in [0, 1]) and PSNR (dB) over `region`.

    images, truth: uint8 (B, C, H, W); region: bool, (B, H, W) or broadcastable to the images.
    An empty region counts as one pixel, so its errors are 0 (PSNR capped by the 1e-10 floor)."""
    err = images.float() / 255 - truth.float() / 255
    area = (region[:, None] if region.dim() == 3 else region).expand_as(err).float()
    pixels = area.sum((1, 2, 3)).clamp(min=1)
    l1 = (err.abs() * area).sum((1, 2, 3)) / pixels
    mse = (err.pow(2) * area).sum((1, 2, 3)) / pixels
    return l1, 10 * torch.log10(1.0 / mse.clamp(min=1e-10))

"""Inpainting baselines on uint8 images: what a MaskGIT result has to beat, and what it cannot.

Every method takes the masked images (B,3,H,W) uint8, the known-pixel masks (B,H,W) bool and, for
the VQGAN ceiling, the ground truth, and returns filled uint8 images of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from maskgit.data.images import LAB_TEST
from maskgit.models.vqgan import VQGAN

INPAINT_RADIUS = 3  # cv2.inpaint's neighbourhood, OpenCV's documented example value


def masked_input(masked: Tensor, known: Tensor) -> Tensor:
    """The input as it is: holes stay the lab's gray."""
    return masked.clone()


def mean_colour(masked: Tensor, known: Tensor) -> Tensor:
    """Holes painted with the mean colour of the image's known pixels."""
    k = known[:, None].expand_as(masked).float()
    mean = (masked.float() * k).sum((2, 3), keepdim=True) / k.sum((2, 3), keepdim=True).clamp(min=1)
    return torch.where(known[:, None], masked, mean.round().to(torch.uint8).expand_as(masked))


def opencv(flag_name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """OpenCV's classical inpainting, `INPAINT_TELEA` (Telea 2004) or `INPAINT_NS` (Navier-Stokes)."""

    def inpaint(masked: Tensor, known: Tensor) -> Tensor:
        import cv2

        flag = getattr(cv2, flag_name)
        images = masked.permute(0, 2, 3, 1).contiguous().numpy()
        holes = (~known).numpy().astype(np.uint8) * 255
        out = np.stack([cv2.inpaint(img, hole, INPAINT_RADIUS, flag) for img, hole in zip(images, holes,
                                                                                            strict=True)])
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    return inpaint


@torch.no_grad()
def vqgan_ceiling(vqgan: VQGAN, truth: Tensor, batch_size: int = 64) -> Tensor:
    """The ground truth's own tokens decoded: the best any transformer on this VQGAN can do."""
    device = next(vqgan.parameters()).device
    out = [LAB_TEST.to_uint8(vqgan.decode_tokens(vqgan.tokenize(LAB_TEST.normalize(batch).to(device)))).cpu()
           for batch in truth.split(batch_size)]
    return torch.cat(out)


def paste_known(images: Tensor, masked: Tensor, known: Tensor) -> Tensor:
    """The known pixels pasted back over a result (composite)."""
    return torch.where(known[:, None], masked, images)


CLASSICAL: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "masked_input": masked_input,
    "mean_colour": mean_colour,
    "telea": opencv("INPAINT_TELEA"),
    "navier_stokes": opencv("INPAINT_NS"),
}

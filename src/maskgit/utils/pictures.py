"""Pictures for reports: decoding progression per image, and a masked / result / truth grid."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

from maskgit.data.images import write_png
from maskgit.utils.atomic import atomic_path


def token_mask_picture(masked: Tensor, size: int = 64) -> Tensor:
    """(L,) bool token mask -> uint8 (3, size, size): white = still masked, black = known/decided."""
    side = int(masked.numel() ** 0.5)
    grid = masked.reshape(1, 1, side, side).float()
    return (F.interpolate(grid, size=size, mode="nearest")[0].expand(3, -1, -1) * 255).to(torch.uint8)


def progression_picture(initial_mask: Tensor, step_masks: Tensor, step_images: Tensor,
                        masked_image: Tensor) -> Tensor:
    """Two rows, one column per step: the latent mask after the step above the image decoded then.

    The first column is the input: its token mask above the masked image.
    """
    columns = [torch.cat([token_mask_picture(initial_mask), masked_image], 1)]
    columns += [torch.cat([token_mask_picture(m), img], 1)
                for m, img in zip(step_masks, step_images, strict=True)]
    return make_grid(torch.stack(columns), nrow=len(columns), padding=2, pad_value=128)


def comparison_grid(masked_images: Tensor, results: Tensor, truths: Tensor | None) -> Tensor:
    """Rows of (masked input, result[, ground truth]) as one uint8 picture."""
    parts = [masked_images, results] + ([truths] if truths is not None else [])
    rows = torch.stack(parts, 1).flatten(0, 1)
    return make_grid(rows, nrow=len(parts), padding=2, pad_value=255)


def save_picture(image: Tensor, path: Path) -> None:
    with atomic_path(path) as tmp:
        write_png(image, tmp)

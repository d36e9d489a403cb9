"""Reading, writing and normalising the 64x64 images and masks of the cat-face data set.

Train/val files are JPEG bytes under a `.png` name, so everything is decoded by content.
Every problem with a file on disk is a `DataError` of one line that starts with the file's path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from maskgit.errors import DataError

IMAGE_SIZE = 64
MASK_KNOWN = 255  # mask64 pixel value of a known pixel; 0 marks a hole


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean/std normalisation; the VQGAN works in this space, not in [-1, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"expected a (3,H,W) or (B,3,H,W) tensor, got shape {tuple(x.shape)}")
        dtype = x.dtype if x.is_floating_point() else torch.float32
        mean = torch.tensor(self.mean, dtype=dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=dtype, device=x.device).view(3, 1, 1)
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 in [0,255] or float in [0,1], shape (B?,3,H,W) -> normalised float tensor."""
        mean, std = self._stats(x)
        x = x.float() / 255.0 if not x.is_floating_point() else x
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tensor -> float tensor in [0,1] (`x * std + mean`, clamped)."""
        mean, std = self._stats(x)
        return (x * std + mean).clamp(0.0, 1.0)

    def to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tensor -> uint8 in [0,255] (rounded)."""
        return (self.denormalize(x) * 255.0).round().to(torch.uint8)


LAB_TRAIN = Normalization((0.4816, 0.4324, 0.3845), (0.2602, 0.2518, 0.2537))
LAB_TEST = Normalization((0.4868, 0.4341, 0.3844), (0.2620, 0.2527, 0.2543))


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def open_checked(path: str | os.PathLike, *, mode: str, what: str = "image") -> Image.Image:
    """Open `path` lazily (header only) and check it is 64x64 with PIL mode `mode`."""
    path = Path(path)
    try:
        im = Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"{path}: cannot read {what} ({_one_line(err)})") from None
    if im.size != (IMAGE_SIZE, IMAGE_SIZE):
        im.close()
        w, h = im.size
        raise DataError(f"{path}: {what} must be {IMAGE_SIZE}x{IMAGE_SIZE}, found {w}x{h}")
    if im.mode != mode:
        im.close()
        expected = "single-channel (mode L)" if mode == "L" else mode
        raise DataError(f"{path}: {what} must be {expected}, found mode {im.mode}")
    return im


def _decode(path: Path, *, mode: str, what: str) -> np.ndarray:
    with open_checked(path, mode=mode, what=what) as im:
        try:
            im.load()
        except (OSError, ValueError, SyntaxError) as err:
            raise DataError(f"{path}: cannot read {what} ({_one_line(err)})") from None
        return np.array(im)


def check_mask_values(path: Path, array: np.ndarray) -> None:
    """Raise if a decoded mask holds values other than 0 and 255."""
    bad = np.setdiff1d(np.unique(array), (0, MASK_KNOWN))
    if bad.size:
        found = ", ".join(str(v) for v in bad[:3]) + (", ..." if bad.size > 3 else "")
        raise DataError(f"{path}: mask values must be 0 or 255, found {found}")


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode a 64x64 RGB image by content (JPEG or PNG) -> uint8 tensor (3,64,64)."""
    array = _decode(Path(path), mode="RGB", what="image")
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_mask(path: str | os.PathLike) -> torch.Tensor:
    """Decode a 64x64 mode-L mask with values {0,255} -> bool tensor (64,64), True = known."""
    path = Path(path)
    array = _decode(path, mode="L", what="mask")
    check_mask_values(path, array)
    return torch.from_numpy(array == MASK_KNOWN)


def write_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a uint8 (3,H,W) tensor as an RGB PNG (not atomic: callers own folder semantics)."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a uint8 (3,H,W) tensor, got {image.dtype} {tuple(image.shape)}")
    array = image.detach().cpu().permute(1, 2, 0).contiguous().numpy()
    Image.fromarray(array).save(path, format="PNG")

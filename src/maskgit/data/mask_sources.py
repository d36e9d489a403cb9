"""Where the test split's masks come from: the data set's own mask64/, or a generator (`masks.py`).

Generated masks are applied to the test ground truth gt/ exactly as the lab made masked_image/:
`masked = gt * m + 128 * (1 - m)`. Pixels only: the datamodule encodes them (token cache keyed by
the masked images' content, hence by the masks).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from maskgit.data.images import IMAGE_SIZE, read_image, read_mask
from maskgit.data.layout import LabLayout
from maskgit.data.masks import MASK_GENERATORS, check_mask_params, generate_masks
from maskgit.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MASK_SOURCES = ("dataset", *MASK_GENERATORS)
HOLE_VALUE = 128  # the lab's gray in masked_image/ holes


def mask_settings(cfg: DictConfig | dict[str, Any] | None) -> dict[str, Any]:
    """The `masks:` config block in canonical form: {"source": "dataset"}, or {"source": shape,
    "seed": s, "params": {...}} with the options of that shape only (the others do not matter)."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = dict(cfg or {})
    source = cfg.get("source", "dataset")
    if source not in MASK_SOURCES:
        raise ConfigError(f"unknown masks.source {source!r}; valid: {', '.join(MASK_SOURCES)}")
    if source == "dataset":
        return {"source": "dataset"}
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"masks.seed must be an integer >= 0, got {seed!r}")
    return {"source": source, "seed": seed, "params": check_mask_params(source, cfg.get(source), IMAGE_SIZE)}


def test_pixels(layout: LabLayout, masks: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """(masked images, known-pixel masks, ground truth) of the test split, pixels only (no VQGAN):
    the data set's own files, or gt/ with generated masks (mask i from (masks.seed, i), holes set to
    the lab's gray)."""
    if layout.gt_files is None:
        raise DataError(f"the test ground truth {layout.root / 'gt'} is missing: it is what the "
                        f"results are measured against (and what masks.source={masks['source']} masks)")
    gt_images = torch.stack([read_image(f) for f in layout.gt_files])
    if masks["source"] == "dataset":
        known = torch.stack([read_mask(f) for f in layout.mask_files])
        return torch.stack([read_image(f) for f in layout.test_files]), known, gt_images
    known = generate_masks(masks["source"], len(gt_images), seed=masks["seed"], size=IMAGE_SIZE,
                           **masks["params"])
    return fill_holes(gt_images, known), known, gt_images


def fill_holes(images: Tensor, known: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) images with the pixels that `known` (B, H, W) marks False set to the lab's gray,
    as the lab made masked_image/."""
    return torch.where(known[:, None], images, torch.full_like(images, HOLE_VALUE))

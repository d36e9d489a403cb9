"""Where the test split's masks come from: the data set's own mask64/, or a generator (`masks.py`).

Generated masks are applied to the test ground truth gt/ exactly as the lab made masked_image/:
`masked = gt * m + 128 * (1 - m)`. Pixels only: the datamodule encodes them (token cache keyed by
the masked images' content, hence by the masks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from maskgit.data.images import IMAGE_SIZE, read_image, read_mask
from maskgit.data.layout import LabLayout
from maskgit.data.masks import (
    MASK_GENERATORS,
    check_hidden_ink,
    check_mask_params,
    generate_masks,
    hidden_share,
    ink_masks,
    share_summary,
)
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
    out = {"source": source, "seed": seed, "params": check_mask_params(source, cfg.get(source), IMAGE_SIZE)}
    if cfg.get("hidden_ink") is not None:  # absent otherwise: the settings (and keys) of other runs stay
        out["hidden_ink"] = check_hidden_ink(cfg["hidden_ink"])
    return out


def draw_masks(masks: dict[str, Any], images: Tensor) -> Tensor:
    """Known-pixel masks (N, H, W) for the uint8 `images` under generated-mask settings `masks`
    (`mask_settings`); with `hidden_ink` each image's own masks are drawn until one hides that share of
    its ink (see `masks.ink_masks`)."""
    params = {"seed": masks["seed"], "size": images.shape[-1], **masks["params"]}
    if "hidden_ink" in masks:
        return ink_masks(masks["source"], images, tuple(masks["hidden_ink"]), **params)
    return generate_masks(masks["source"], len(images), **params)


def hidden_ink_report(masks: dict[str, Any], images: Tensor | None, known: Tensor) -> dict[str, Any]:
    """{"hidden_ink_share": mean, min, max} of masks drawn for a hidden ink share; {} otherwise."""
    if "hidden_ink" not in masks or images is None:
        return {}
    return {"hidden_ink_share": share_summary(hidden_share(images, known))}


def test_pixels(layout: LabLayout, masks: dict[str, Any],
                read: Callable[[Path], Tensor] = read_image) -> tuple[Tensor, Tensor, Tensor]:
    """(masked images, known-pixel masks, ground truth) of the test split, pixels only (no VQGAN):
    the data set's own files, or gt/ with generated masks (mask i from (masks.seed, i), holes set to
    the lab's gray); `read`: how a ground-truth file is read (a labelled folder's resizes)."""
    if layout.gt_files is None:
        raise DataError(f"the test ground truth {layout.root / 'gt'} is missing: it is what the "
                        f"results are measured against (and what masks.source={masks['source']} masks)")
    gt_images = torch.stack([read(f) for f in layout.gt_files])
    if masks["source"] == "dataset":
        known = torch.stack([read_mask(f) for f in layout.mask_files])
        return torch.stack([read_image(f) for f in layout.test_files]), known, gt_images
    known = draw_masks(masks, gt_images)
    return fill_holes(gt_images, known), known, gt_images


def fill_holes(images: Tensor, known: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) images with the pixels that `known` (B, H, W) marks False set to the lab's gray,
    as the lab made masked_image/."""
    return torch.where(known[:, None], images, torch.full_like(images, HOLE_VALUE))

"""Where the test split's masks come from: the data set's own mask64/, or a generator (`masks.py`).

Generated masks are applied to the test ground truth gt/ exactly as the lab made masked_image/:
`masked = gt * m + 128 * (1 - m)`. The masked images are encoded once by the VQGAN and kept in the
token cache, keyed by the VQGAN and the masked images' content (hence by the masks).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from maskgit.data.datamodule import CatFaceDataModule, InpaintingSet
from maskgit.data.images import IMAGE_SIZE, LAB_TEST, read_image, read_mask
from maskgit.data.layout import CatFaceLayout
from maskgit.data.masks import MASK_GENERATORS, check_mask_params, generate_masks
from maskgit.data.token_cache import CACHE_VERSION, module_digest
from maskgit.errors import ConfigError, DataError
from maskgit.utils.progress import progress

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


def build_test_set(datamodule: CatFaceDataModule, masks: dict[str, Any]) -> InpaintingSet:
    """The test split with the masks `masks` (from `mask_settings`) asks for."""
    if masks["source"] == "dataset":
        return datamodule.inpainting_set()
    return generated_mask_set(datamodule, masks)


def test_pixels(layout: CatFaceLayout, masks: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
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
    masked_images = torch.where(known[:, None], gt_images, torch.full_like(gt_images, HOLE_VALUE))
    return masked_images, known, gt_images


def generated_mask_set(datamodule: CatFaceDataModule, masks: dict[str, Any]) -> InpaintingSet:
    """gt/ images with generated masks, with their tokens (see `test_pixels`)."""
    layout = datamodule.layout_with("test")
    masked_images, known, gt_images = test_pixels(layout, masks)
    tokens = _tokens_of(datamodule, f"masked-{masks['source']}", masked_images)
    gt_tokens = datamodule._tokens("gt", layout.gt_files, LAB_TEST)
    return InpaintingSet(tokens, known, masked_images, gt_tokens, gt_images)


def _tokens_of(datamodule: CatFaceDataModule, name: str, images: Tensor) -> Tensor:
    """Tokens (N, h*w) of in-memory uint8 test images, from the token cache or encoded now."""
    vqgan = datamodule.vqgan
    if vqgan is None:
        raise ConfigError("CatFaceDataModule needs a VQGAN: call use_tokenizer(vqgan) first")
    content = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()
    key = hashlib.sha256("|".join([str(CACHE_VERSION), module_digest(vqgan), content,
                                   repr(LAB_TEST)]).encode()).hexdigest()[:20]
    path = datamodule.token_cache.cache_dir / f"{name}-{len(images)}-{key}.pt"
    what = f"encoding {len(images):,} {name} images"

    def encode(device: torch.device) -> Tensor:
        tokens = []
        with torch.no_grad(), progress(what, len(images)) as advance:
            for batch in images.split(datamodule.encode_batch_size):
                tokens.append(vqgan.tokenize(LAB_TEST.normalize(batch).to(device)).to("cpu", torch.int16))
                advance(len(batch))
        return torch.cat(tokens)

    return datamodule.token_cache.cached(path, vqgan, datamodule._device(), what, encode)

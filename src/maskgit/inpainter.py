"""Inpainting and generation from Python, without Hydra: `Inpainter`.

    from maskgit import Inpainter
    painter = Inpainter.from_checkpoint("logs/train/runs/<run>/checkpoints/last.ckpt", device="cpu")
    out = painter.inpaint(images, known)               # uint8 (B, 3, 64, 64): the lab's protocol
    out = painter.inpaint(images, known, preset="quickstart", total_iter=12, sweet_spot=8)
    samples = painter.generate(16, classes=["3"], guidance=2.0)   # a class-conditional checkpoint

The work is eval.py's: the same checkpoint loading, hole filling (the lab's gray), VQGAN encoding,
`maskgit.decoding.iterative.decode` with a `DecodeSettings` built from the same presets (conf/decoding/) and
per-image seeds, and the same VQGAN decoding; only the data set, metrics and files are left out.
Image i of a call draws the noise eval.py gives test image i.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from maskgit.config import CONF_DIR
from maskgit.data.images import IMAGE_SIZE, LAB_TEST, LAB_TRAIN, Normalization
from maskgit.data.mask_sources import fill_holes
from maskgit.data.token_cache import encode_tensors
from maskgit.decoding.iterative import decode, pixel_to_token_mask
from maskgit.decoding.settings import DecodeSettings
from maskgit.errors import ConfigError
from maskgit.modules.maskgit import MaskGIT

PRESETS_DIR = CONF_DIR / "decoding"


def preset(name: str) -> tuple[DecodeSettings, bool]:
    """A decoding preset of conf/decoding/ (lab, paper, quickstart): its settings and `composite`."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown decoding preset {name!r}; valid: {names}")
    values = OmegaConf.to_container(OmegaConf.load(path))
    known = {f.name for f in fields(DecodeSettings)}
    return DecodeSettings(**{k: v for k, v in values.items() if k in known}), bool(values["composite"])


class Inpainter:
    """A trained MaskGIT (transformer + its VQGAN) that fills holes and draws samples, in batches."""

    def __init__(self, model: MaskGIT, batch_size: int = 64):
        self.model = model.eval()
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        vqgan_ckpt_path: str | None = None, batch_size: int = 64) -> Inpainter:
        """A train.py checkpoint (and the VQGAN file it names, or `vqgan_ckpt_path`) on `device`."""
        return cls(MaskGIT.from_checkpoint(str(path), vqgan_ckpt_path, map_location=device), batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.transformer.parameters()).device

    def settings(self, preset_name: str, overrides: dict[str, Any]) -> tuple[DecodeSettings, bool]:
        """The preset with `overrides` (decoding fields, or `composite`) applied and checked."""
        settings, composite = preset(preset_name)
        composite = bool(overrides.pop("composite", composite))
        unknown = sorted(set(overrides) - {f.name for f in fields(DecodeSettings)})
        if unknown:
            raise ConfigError(f"unknown decoding setting {unknown[0]!r}; valid: "
                              f"{', '.join(f.name for f in fields(DecodeSettings))}, composite")
        return replace(settings, **overrides), composite

    @torch.no_grad()
    def inpaint(self, images: Tensor, known: Tensor, labels: Sequence[int] | Tensor | None = None, *,
                preset: str = "lab", **decoding: Any) -> Tensor:
        """Fill the holes of `images` (uint8 (B, 3, 64, 64)) where `known` (bool or 0/1 (B, 64, 64),
        True = known pixel, the lab's mask64 convention) is False; uint8 (B, 3, 64, 64) on the CPU.

        `preset`: lab (default), paper or quickstart; `decoding`: any DecodeSettings field, or
        `composite`. `labels`: class ids for a class-conditional model (none: unconditional)."""
        images, known = check_pair(images, known)
        settings, composite = self.settings(preset, decoding)
        masked = fill_holes(images, known)
        tokens = encode_tensors(self.model.vqgan, masked, LAB_TEST, self.batch_size, self.device,
                                "encoding").long()
        out = self._decode(tokens, pixel_to_token_mask(known), settings, labels, LAB_TEST)
        return torch.where(known[:, None], masked, out) if composite else out

    @torch.no_grad()
    def generate(self, n: int, classes: Sequence[int | str] | None = None, *, preset: str = "paper",
                 **decoding: Any) -> Tensor:
        """`n` samples from a blank canvas (per class of `classes`, ids or names, for a
        class-conditional model), uint8 (N, 3, 64, 64); guidance through `guidance=w`."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"n must be an integer >= 0, got {n!r}")
        settings, _ = self.settings(preset, decoding)
        labels = None
        if classes is not None:
            from maskgit.tasks.generate import chosen_classes

            chosen = chosen_classes(self.model, list(classes))
            labels = torch.tensor(chosen).repeat_interleave(n)
        count = n if labels is None else len(labels)
        length = self.model.transformer.num_image_tokens
        tokens = torch.zeros(count, length, dtype=torch.long)
        return self._decode(tokens, torch.ones_like(tokens, dtype=torch.bool), settings, labels, LAB_TRAIN)

    def _decode(self, tokens: Tensor, masked: Tensor, settings: DecodeSettings,
                labels: Sequence[int] | Tensor | None, norm: Normalization) -> Tensor:
        model, out = self.model, []
        transformer = model.transformer
        if labels is not None:
            if not model.conditional:
                raise ConfigError("labels need a class-conditional checkpoint; this one is unconditional")
            labels = torch.as_tensor(labels, dtype=torch.long)
            if labels.shape != tokens.shape[:1]:
                raise ConfigError(f"one label per image: {len(tokens)} images, labels of shape "
                                  f"{tuple(labels.shape)}")
        elif model.conditional:
            labels = torch.full(tokens.shape[:1], transformer.null_class, dtype=torch.long)
        index = torch.arange(len(tokens))
        for start in range(0, len(tokens), self.batch_size):
            part = slice(start, start + self.batch_size)
            result = decode(transformer, tokens[part].to(self.device), masked[part].to(self.device), settings,
                            num_codes=model.num_codes, seeds=settings.image_seeds(index[part]),
                            labels=None if labels is None else labels[part].to(self.device),
                            null_label=transformer.null_class if model.conditional else None)
            out.append(norm.to_uint8(model.vqgan.decode_tokens(result.tokens)).cpu())
        return torch.cat(out)


def check_pair(images: Tensor, known: Tensor) -> tuple[Tensor, Tensor]:
    """uint8 (B, 3, 64, 64) images and a binary (B, 64, 64) known-pixel mask, or one ConfigError line."""
    if not isinstance(images, Tensor) or not isinstance(known, Tensor):
        raise ConfigError("images and masks must be torch tensors: uint8 (B, 3, 64, 64) and (B, 64, 64)")
    size = (IMAGE_SIZE, IMAGE_SIZE)
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, *size):
        raise ConfigError(f"images must be uint8 (B, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), got {images.dtype} "
                          f"{tuple(images.shape)}")
    if len(images) == 0:
        raise ConfigError("no images to inpaint: an empty batch")
    if known.dim() == 4 and known.shape[1] == 1:
        known = known[:, 0]
    if known.dim() != 3 or tuple(known.shape[1:]) != size or len(known) != len(images):
        raise ConfigError(f"masks must be ({len(images)}, {IMAGE_SIZE}, {IMAGE_SIZE}) for "
                          f"{len(images)} images, got {tuple(known.shape)}")
    if known.dtype != torch.bool:
        values = set(torch.unique(known).tolist())
        if not (values <= {0, 1} or values <= {0, 255}):
            shown = ", ".join(str(v) for v in sorted(values)[:4])
            raise ConfigError("masks must be binary (bool, 0/1 or the lab's 0/255, the high value = known "
                              f"pixel), found {shown}")
        known = known == max(values | {1})
    return images.cpu(), known.cpu()

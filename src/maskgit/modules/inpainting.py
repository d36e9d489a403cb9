"""Evaluate inpainting on the test split: a LightningModule for `Trainer.test`.

Each test batch is decoded (batched iterative decoding), turned into pixels by the VQGAN, written
as `image_NNN.png` (the lab's names) and fed to metrics that torchmetrics synchronises across
processes, so two devices give the same numbers as one. Decoding keeps every step's tokens, so
other sweet spots of the same decoding are served from memory instead of decoded again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.image import StructuralSimilarityIndexMeasure

from maskgit.data.images import LAB_TEST, Normalization, read_image, write_png
from maskgit.decoding.iterative import decode
from maskgit.decoding.settings import ALL_STEPS, DecodeSettings
from maskgit.metrics.fid import FeatureBank, FIDSettings, extractor, reference_features, score
from maskgit.metrics.pixels import region_l1_psnr
from maskgit.modules.maskgit import MaskGIT
from maskgit.utils.identity import BoundedCache
from maskgit.utils.pictures import progression_picture

# Per-step tokens of the last finished decodings, keyed by everything but the sweet spot (see
# `DecodeSettings.memo_key`): each entry holds all total_iter steps, whatever sweet spot asked for it
# first, so every sweet spot of one decoding is served from one pass, in any order.
_STEP_MEMO: BoundedCache[tuple, dict[int, tuple[Tensor, Tensor]]] = BoundedCache(8)


class InpaintingEvaluator(L.LightningModule):
    def __init__(self, model: MaskGIT, settings: DecodeSettings, results_dir: Path,
                 fid: FIDSettings | None = None, reference: tuple[list[Path], str] | None = None,
                 unseen: Tensor | None = None, cache_dir: Path | None = None,
                 composite: bool = False, num_pictures: int = 0, pictures_dir: Path | None = None,
                 memo_scope: str = "", norm: Normalization = LAB_TEST,
                 read: Callable[[Path], Tensor] = read_image, use_labels: bool = True):
        """`fid`: measure FID/KID of the results against `reference` (files in index order, their
        digest); `unseen` marks the test images whose ground truth is in neither train nor val.
        `norm`: the test images' normalisation; `read`: how a reference file is read (the datamodule's).
        A class-conditional model decodes each image with its batch label (`label`), guided by
        `settings.guidance`; with `use_labels=False` (or no label) every image gets the null class,
        which shows what the label itself adds."""
        super().__init__()
        self.model, self.settings = model, settings
        self.results_dir, self.pictures_dir = Path(results_dir), pictures_dir
        self.fid, self.reference, self.cache_dir = fid, reference, cache_dir
        self.features = FeatureBank(extractor(fid)) if fid is not None and reference is not None else None
        self.register_buffer("unseen", unseen if unseen is not None else torch.zeros(0, dtype=torch.bool))
        self.composite, self.num_pictures = composite, num_pictures
        self.norm, self.read, self.use_labels = norm, read, use_labels
        self.memo = _STEP_MEMO.get_or_make(settings.memo_key(memo_scope), dict)
        self.token_accuracy = MeanMetric()
        self.hole_l1 = MeanMetric()
        self.hole_psnr = MeanMetric()
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.images_done = SumMetric()
        self.seconds: dict[str, float] = defaultdict(float)
        self.decoded_now = 0  # images decoded by this run (the rest came from an earlier sweep point)
        self.final_metrics: dict[str, Any] = {}

    def on_test_epoch_end(self) -> None:
        self.final_metrics = self.results()

    def _timed(self, phase: str, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[phase] += now - start
        return now

    def _step_tokens(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(T, B, L) tokens and masks after each of the total_iter steps, from memory or decoded now."""
        index = batch["index"].tolist()
        if all(i in self.memo for i in index):
            tokens, masks = zip(*(self.memo[i] for i in index), strict=True)
            return torch.stack(tokens, 1).to(self.device).long(), torch.stack(masks, 1).to(self.device)
        s = self.settings
        labels = batch.get("label") if self.model.conditional and self.use_labels else None
        if self.model.conditional and labels is None:
            labels = torch.full_like(batch["index"], self.model.transformer.null_class)
        every_step = replace(s, sweet_spot=ALL_STEPS)
        result = decode(self.model.transformer, batch["tokens"], batch["masked"], every_step,
                        num_codes=self.model.num_codes, seeds=s.image_seeds(batch["index"]),
                        return_steps=True, labels=labels, null_label=self.model.transformer.null_class)
        self.decoded_now += len(index)
        # Kept compact (a 3 x 28 grid holds ~400 steps of 747 x 256 tokens): int16 fits any codebook
        # of the lab's size (1024 codes); larger codebooks fall back to int32.
        small = torch.int16 if self.model.num_codes <= torch.iinfo(torch.int16).max else torch.int32
        for j, i in enumerate(index):
            self.memo[i] = (result.step_tokens[:, j].to("cpu", small), result.step_masks[:, j].cpu())
        return result.step_tokens, result.step_masks

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        start = time.perf_counter()
        step_tokens, step_masks = self._step_tokens(batch)
        tokens = step_tokens[self.settings.last_step]
        start = self._timed("decode", start)

        images = self.norm.to_uint8(self.model.vqgan.decode_tokens(tokens))
        known = batch["pixel_known"][:, None].expand_as(images)
        if self.composite:
            images = torch.where(known, batch["masked_image"], images)
        start = self._timed("vqgan_decode", start)

        for image, i in zip(images, batch["index"].tolist(), strict=True):
            write_png(image, self.results_dir / f"image_{i:03d}.png")
        start = self._timed("write", start)

        if "gt_tokens" in batch:
            self._update_quality(batch, tokens, images, known)
        if self.features is not None:
            self.features.update(images, batch["index"])
        start = self._timed("features", start)
        self._pictures(batch, step_tokens, step_masks)
        self._timed("pictures", start)

    def _update_quality(self, batch: dict[str, Tensor], tokens: Tensor, images: Tensor,
                        known: Tensor) -> None:
        masked = batch["masked"]
        correct = (tokens == batch["gt_tokens"]) & masked
        has_masked = masked.any(1)
        self.token_accuracy.update(correct.sum(1)[has_masked] / masked.sum(1)[has_masked],
                                   masked.sum(1)[has_masked])
        l1, psnr = region_l1_psnr(images, batch["gt_image"], ~known)
        self.hole_l1.update(l1)
        self.hole_psnr.update(psnr)
        self.ssim.update(images.float() / 255, batch["gt_image"].float() / 255)
        self.images_done.update(torch.tensor(float(len(tokens)), device=self.device))

    def _pictures(self, batch: dict[str, Tensor], step_tokens: Tensor, step_masks: Tensor) -> None:
        chosen = [j for j, i in enumerate(batch["index"].tolist()) if i < self.num_pictures]
        if not chosen or self.pictures_dir is None:
            return
        steps = self.settings.steps_run
        for j in chosen:
            frames = self.norm.to_uint8(self.model.vqgan.decode_tokens(step_tokens[:steps, j]))
            picture = progression_picture(batch["masked"][j], step_masks[:steps, j], frames,
                                          batch["masked_image"][j])
            i = int(batch["index"][j])
            write_png(picture, self.pictures_dir / f"progression_{i:03d}.png")

    def results(self) -> dict[str, Any]:
        """Metrics over all processes (torchmetrics synchronises the states); FID on rank 0 only."""
        out: dict[str, Any] = {}
        if int(self.images_done.compute()) > 0:
            out["masked_token_accuracy"] = float(self.token_accuracy.compute())
            out["hole_l1"] = float(self.hole_l1.compute())
            out["hole_psnr"] = float(self.hole_psnr.compute())
            out["ssim"] = float(self.ssim.compute())
        if self.features is not None:
            index, generated = self.features.compute()  # a collective: every rank takes part
            if self.global_rank == 0:
                out.update(self.fid_scores(index, generated))
        return out

    def fid_scores(self, index: Tensor, generated: Tensor) -> dict[str, Any]:
        """FID (with its interval) and KID against the ground truth of the same test images, paired
        by index; the same on the unseen subset."""
        reference = self.reference_features()[index]
        start = time.perf_counter()
        out = score(generated, reference, self.fid, paired=True)
        if len(self.unseen):
            subset = self.unseen.cpu()[index]
            if int(subset.sum()) >= 2:
                out.update(score(generated[subset], reference[subset], self.fid, paired=True,
                                 prefix="fid_unseen"))
        self._timed("fid_scores", start)
        return out

    def reference_features(self) -> Tensor:
        """The reference files' Inception features, from the disk cache or computed once."""
        start = time.perf_counter()
        files, digest = self.reference

        def batches():
            for i in range(0, len(files), 64):
                yield torch.stack([self.read(f) for f in files[i:i + 64]])

        features = reference_features(self.features.net, batches, data_digest=digest,
                                      cache_dir=self.cache_dir, total=len(files))
        self._timed("reference_stats", start)
        return features

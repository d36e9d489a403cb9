"""Generation as a `Trainer.test` module: MaskGIT decoding of a fully masked canvas.

Generation is inpainting with nothing known: all tokens start as the mask id (N_i = 256), so the
decoding, the step memory (other sweet spots of a decoding are served from memory), the timings,
the progression pictures and the FID machinery of `InpaintingEvaluator` are reused. Sample i's noise
comes only from (seed, i); each process takes every world_size-th sample, so samples and FID do not
depend on batch size or device count.

A class-conditional model generates `num_samples` per chosen class (sample i has class
`labels[i]`, guided by `settings.guidance`); FID and KID are then also measured per class against
that class's real val images, and a classifier trained on the real training images
(`metrics.class_probe`) measures class consistency: the share of samples it reads as their class.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from maskgit.data.images import LAB_TRAIN, read_image, write_png
from maskgit.decoding.iterative import DecodeSettings
from maskgit.metrics.class_probe import SmallClassifier, class_consistency
from maskgit.metrics.fid import FeatureBank, FIDSettings, score
from maskgit.modules.inpainting import InpaintingEvaluator
from maskgit.modules.maskgit import MaskGIT


class CanvasSet(Dataset):
    """Fully masked canvases: every token masked, no known pixel, an all-gray input picture."""

    def __init__(self, num_samples: int, num_tokens: int, image_size: int = 64, labels: Tensor | None = None):
        self.num_samples, self.num_tokens, self.image_size = num_samples, num_tokens, image_size
        self.labels = labels

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict:
        s = self.image_size
        return {"index": i, "tokens": torch.zeros(self.num_tokens, dtype=torch.long),
                "masked": torch.ones(self.num_tokens, dtype=torch.bool),
                "pixel_known": torch.zeros(s, s, dtype=torch.bool),
                "masked_image": torch.full((3, s, s), 128, dtype=torch.uint8),
                **({"label": self.labels[i]} if self.labels is not None else {})}


@dataclass
class ClassSetting:
    """What a class-conditional generation is measured with: the label of each sample, the labels of
    the reference (val) images (None: unlabelled data), and the class-consistency classifier with its
    accuracy on the real val images."""

    sample_labels: Tensor
    reference_labels: Tensor | None = None
    classifier: SmallClassifier | None = None
    classifier_val_accuracy: float | None = None


class SampleGenerator(InpaintingEvaluator):
    """Writes `sample_NNNN.png` into `samples_dir`; FID against `reference` (files, their digest)."""

    def __init__(self, model: MaskGIT, settings: DecodeSettings, samples_dir: Path, num_samples: int,
                 batch_size: int, fid: FIDSettings | None = None,
                 reference: tuple[list[Path], str] | None = None,
                 cache_dir: Path | None = None, num_pictures: int = 0, pictures_dir: Path | None = None,
                 memo_scope: str = "", classes: ClassSetting | None = None,
                 read: Callable[[Path], Tensor] = read_image):
        """`classes`: a class-conditional generation (then `num_samples` is the total, len of its labels)."""
        super().__init__(model, settings, samples_dir, fid=fid, reference=reference, cache_dir=cache_dir,
                         num_pictures=num_pictures, pictures_dir=pictures_dir,
                         memo_scope=f"generate|{memo_scope}", norm=LAB_TRAIN, read=read)
        size = model.vqgan.config["img_resolution"]
        self.classes = classes
        labels = classes.sample_labels if classes is not None else None
        self.samples = CanvasSet(num_samples, model.transformer.num_image_tokens, size, labels)
        self.batch_size = batch_size
        self.predictions = FeatureBank(classes.classifier) if classes and classes.classifier else None

    def test_dataloader(self) -> DataLoader:
        # Every world_size-th sample, no padding (a padded duplicate would count twice in the FID).
        world, rank = self.trainer.world_size, self.trainer.global_rank
        shard = self.samples if world == 1 else Subset(self.samples, range(rank, len(self.samples), world))
        return DataLoader(shard, batch_size=self.batch_size, shuffle=False)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        start = time.perf_counter()
        step_tokens, step_masks = self._step_tokens(batch)
        tokens = step_tokens[self.settings.last_step]
        start = self._timed("decode", start)

        images = self.norm.to_uint8(self.model.vqgan.decode_tokens(tokens))  # the training images' space
        start = self._timed("vqgan_decode", start)

        for image, i in zip(images, batch["index"].tolist(), strict=True):
            write_png(image, self.results_dir / f"sample_{i:04d}.png")
        start = self._timed("write", start)

        if self.features is not None:
            self.features.update(images, batch["index"])
        if self.predictions is not None:  # class logits, gathered like features
            self.predictions.update(images, batch["index"])
        start = self._timed("features", start)
        self._pictures(batch, step_tokens, step_masks)
        self._timed("pictures", start)

    def fid_scores(self, index: Tensor, generated: Tensor) -> dict:
        """FID (interval: samples and reference resampled independently) and KID against the val
        images; for a class-conditional generation also per class, and the class consistency."""
        reference = self.reference_features()
        out = score(generated, reference, self.fid, paired=False)
        if self.classes is None or self.classes.reference_labels is None:
            return out
        labels, ref_labels = self.classes.sample_labels[index], self.classes.reference_labels
        per_class = {}
        for c in labels.unique().tolist():
            mine, real = generated[labels == c], reference[ref_labels == c]
            if len(mine) >= 2 and len(real) >= 2:
                per_class[str(c)] = score(mine, real, self.fid, paired=False)
        out["per_class"] = per_class
        return out

    def results(self) -> dict[str, Any]:
        """The FID metrics, and the class consistency of a class-conditional generation."""
        out = super().results()
        if self.predictions is not None:
            index, logits = self.predictions.compute()  # a collective: every rank takes part
            wanted = self.classes.sample_labels[index]
            out.update(class_consistency(logits.argmax(-1), wanted, wanted.unique().tolist()))
            out["classifier_val_accuracy"] = self.classes.classifier_val_accuracy
        return out

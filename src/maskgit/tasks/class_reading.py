"""Class consistency shared by the eval tasks: the classifier of `metrics.class_probe`, trained once on
the real training images of a labelled folder (cached), and what it reads in any set of images.

Generation asks "is the sample the class it was asked for"; inpainting and the baselines ask "can the
digit still be read": the share of inpainted images read as their true label, beside the same
classifier's reading of the masked input (holes as the task shows them) and of the original images,
so a method is judged against both ends of the scale on the very same images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from maskgit.metrics.class_probe import (
    ClassifierSettings,
    SmallClassifier,
    classifier_path,
    predict,
    train_classifier,
)
from maskgit.utils.identity import key

log = logging.getLogger(__name__)


@dataclass
class ClassReader:
    """The classifier and its accuracy on the real val images of the data set."""

    classifier: SmallClassifier
    val_accuracy: float

    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        """Share of uint8 images (N, 3, H, W) the classifier reads as `labels` (N,)."""
        return float((predict(self.classifier, images) == labels).double().mean())


def classifier_settings(cfg: DictConfig) -> ClassifierSettings:
    c = cfg.metrics.classifier
    return ClassifierSettings(epochs=int(c.epochs), batch_size=int(c.batch_size), lr=float(c.lr))


def reader_for(cfg: DictConfig, datamodule: Any) -> ClassReader | None:
    """`fit_reader` on a labelled data set (it has classes to read) with `metrics.classifier.enabled`;
    None otherwise."""
    if not (hasattr(datamodule, "read_images") and cfg.metrics.classifier.enabled):
        return None
    return fit_reader(cfg, datamodule)


def fit_reader(cfg: DictConfig, datamodule: Any) -> ClassReader:
    """The classifier trained on the labelled datamodule's training images (or read from the cache
    under `paths.cache_dir`), and its accuracy on the real val images."""
    settings = classifier_settings(cfg)
    layout = datamodule.layout_with("train", "val")
    path = classifier_path(Path(cfg.paths.cache_dir) / "classifier",
                           key({"train": datamodule.files_key(layout.train_files),
                                "labels": layout.train_labels}), layout.num_classes, settings)
    classifier = train_classifier(lambda: datamodule.read_images(layout.train_files),
                                  torch.tensor(layout.train_labels), layout.num_classes, settings, path)
    read = predict(classifier, datamodule.read_images(layout.val_files)) == torch.tensor(layout.val_labels)
    return ClassReader(classifier, float(read.double().mean()))


def references(reader: ClassReader, labels: Tensor, *, masked: Tensor, original: Tensor) -> dict[str, float]:
    """The two ends of the scale: the classifier's accuracy on the masked input and on the originals."""
    out = {"class_accuracy_masked_input": reader.accuracy(masked, labels),
           "class_accuracy_original": reader.accuracy(original, labels),
           "classifier_val_accuracy": reader.val_accuracy}
    log.info("class consistency: masked input %.3f, originals %.3f (classifier on the val images: %.3f)",
             *out.values())
    return out


def reading(reader: ClassReader, labels: Tensor, *, inpainted: Tensor, masked: Tensor,
            original: Tensor) -> dict[str, float]:
    """class_accuracy of the inpainted images, beside the masked input's and the originals'."""
    out = {"class_accuracy": reader.accuracy(inpainted, labels)}
    log.info("class consistency: inpainted %.3f", out["class_accuracy"])
    return {**out, **references(reader, labels, masked=masked, original=original)}

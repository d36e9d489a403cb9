"""Labelled image folders (`data=image_folder`): ImageFolder or tiny-imagenet-200 layout, with labels.

The same LightningDataModule family as the cat faces (`ImageDataModule`), so training, token
caching, eval tasks and sweeps work unchanged; what differs:
- files come from `labelled_layout.scan_labelled` (class selection by id or name, the val split
  rule) and are resized to `image_size` when read;
- stage 2 serves (tokens, labels); the token cache is keyed by the files, their labels and the size,
  and carries the labels;
- the "test" split of label-conditioned inpainting is the val split, with masks from a mask
  generator (`masks.source=box|freeform|border`; a labelled folder has no masks of its own);
- all splits use the training images' normalisation (LAB_TRAIN), the space the VQGAN is trained in.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from maskgit.data.datamodule import _LOADED, ImageDataModule, ImageSet, InpaintingSet
from maskgit.data.images import LAB_TRAIN, Normalization
from maskgit.data.labelled_layout import LAYOUTS, LabelledLayout, read_resized, scan_labelled
from maskgit.data.mask_sources import draw_masks, fill_holes
from maskgit.data.token_cache import encode_tensors
from maskgit.errors import ConfigError
from maskgit.utils.identity import files_digest, key, module_digest, tensor_digest

_SPLIT_OF = {"train": "train", "val": "val", "test": "val"}  # the labelled test images are the val ones


class LabelledDataModule(ImageDataModule):
    test_norm: Normalization = LAB_TRAIN

    def __init__(self, root: str, layout: str = "auto", classes: Sequence[str] | None = None,
                 val_fraction: float = 0.1, image_size: int = 64, **kwargs: Any):
        """`classes`: ids (folder names, wnids) or names, in label order (None: all); `val_fraction`:
        the share of each class held out as val when the folder has no val split of its own;
        the other arguments are ImageDataModule's (`limit`: the first n files of each class)."""
        if kwargs.get("synthetic"):
            raise ConfigError("data.synthetic makes cat-face data; it does not apply to data=image_folder")
        super().__init__(root, **kwargs)
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout must be one of {', '.join(LAYOUTS)}, found {layout!r}")
        self.layout_kind, self.image_size = layout, int(image_size)
        self.classes = list(classes) if classes else None
        self.val_fraction = float(val_fraction)
        self.read = partial(read_resized, size=self.image_size)

    # -- the files -------------------------------------------------------------------------------
    def use_classes(self, ids: Sequence[str]) -> None:
        """Number labels as a trained model does (its checkpoint's classes), whatever data.classes says."""
        self.classes, self._layout, self._scanned = list(ids), None, set()

    def check(self, splits: Collection[str] = ("train", "val")) -> LabelledLayout:
        wanted = sorted({_SPLIT_OF[s] for s in splits})
        limit = {"train": self.limit.get("train"), "val": self.limit.get("val")}
        if "test" in splits and self.limit.get("test") is not None:
            limit["val"] = self.limit["test"]
        self._layout = scan_labelled(self.root, layout=self.layout_kind, classes=self.classes,
                                     val_fraction=self.val_fraction, limit=limit,
                                     check_images=self.check_images, splits=wanted)
        if "val" in wanted and not self._layout.val_files:
            raise ConfigError(f"{self.root}: the val split is empty (data.val_fraction="
                              f"{self.val_fraction}); it is what val loss, FID and inpainting use")
        self._scanned = set(splits)
        return self._layout

    @property
    def num_classes(self) -> int:
        return self.layout.num_classes

    def class_records(self) -> list[dict[str, str]]:
        """[{"id", "name"}] in label order: what a checkpoint records."""
        layout = self.layout
        return [{"id": i, "name": n} for i, n in zip(layout.class_ids, layout.class_names, strict=True)]

    def read_images(self, files: Sequence) -> Tensor:
        return torch.stack([self.read(f) for f in files])

    # -- what the stages load --------------------------------------------------------------------
    def labelled_tokens(self, split: str, files: Sequence, labels: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Tokens (N, h*w) and labels (N,) of `files`, from the token cache or encoded now."""
        vqgan = self._tokenizer()
        labels_t = torch.tensor(list(labels), dtype=torch.long)
        digest = key({"files": files_digest(files), "labels": tensor_digest(labels_t),
                      "size": self.image_size})
        path = self.token_cache.path_for_digest(f"labelled-{split}", len(files), vqgan, digest, LAB_TRAIN)
        what = f"encoding {len(files):,} {split} images"

        def encode(device: torch.device) -> Tensor:
            return encode_tensors(vqgan, self.read_images(files), LAB_TRAIN, self.encode_batch_size, device,
                                  what)

        return self.token_cache.cached(path, vqgan, self._device(), what, encode, labels=labels_t), labels_t

    def token_splits(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        layout = self.layout_with("train", "val")
        vqgan = self._tokenizer()
        key_ = ("fit-labelled", module_digest(vqgan), files_digest(layout.train_files),
                files_digest(layout.val_files), tuple(layout.train_labels), tuple(layout.val_labels),
                self.image_size)
        return _LOADED.get_or_make(key_, lambda: (
            self.labelled_tokens("train", layout.train_files, layout.train_labels),
            self.labelled_tokens("val", layout.val_files, layout.val_labels)))

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate") and self.train_set is None:
            layout = self.layout_with("train", "val")
            if self.serve == "images":
                self.train_set = ImageSet(self.read_images(layout.train_files), self.flip)
                self.val_set = ImageSet(self.read_images(layout.val_files))
            else:
                (train, train_labels), (val, val_labels) = self.token_splits()
                self.train_set = TensorDataset(train, train_labels)
                self.val_set = TensorDataset(val, val_labels)
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self.inpainting_set()

    def inpainting_set(self) -> InpaintingSet:
        """The val images with generated masks, their tokens and labels."""
        layout = self.layout_with("test")
        if self.masks["source"] == "dataset":
            raise ConfigError("a labelled image folder has no masks of its own: set masks.source to "
                              "box, freeform or border (eval.py's masks: block)")
        key_ = ("test-labelled", module_digest(self._tokenizer()), files_digest(layout.val_files),
                tuple(layout.val_labels), repr(sorted(self.masks.items())), self.image_size)
        return _LOADED.get_or_make(key_, lambda: self._build_labelled_set(layout))

    def _build_labelled_set(self, layout: LabelledLayout) -> InpaintingSet:
        gt_tokens, labels = self.labelled_tokens("val", layout.val_files, layout.val_labels)
        gt_images = self.read_images(layout.val_files)
        known = draw_masks(self.masks, gt_images)
        masked_images = fill_holes(gt_images, known)
        tokens = self._pixel_tokens(f"labelled-masked-{self.masks['source']}", masked_images)
        return InpaintingSet(tokens, known, masked_images, gt_tokens, gt_images, labels=labels)

    def files_key(self, files: Sequence) -> str:
        return key({"files": files_digest(files), "size": self.image_size})

    def reference_files(self) -> tuple[list, list[int]]:
        """The val files and their labels: the real images generated samples are measured against."""
        layout = self.layout_with("val")
        return layout.val_files, layout.val_labels


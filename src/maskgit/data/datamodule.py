"""The LightningDataModule of a data set in the lab's layout: token or image batches for training,
masked test images for inpainting.

`serve="tokens"` (stage 2): the VQGAN is frozen, so train/val/test images are encoded once (see
`token_cache`) and the loaders serve tokens; training never runs the encoder. `use_tokenizer` hands
over the VQGAN that the LightningModule owns.
`serve="images"` (stage 1, VQGAN training): train/val images are decoded once into memory as uint8
and served as lab-normalised float batches, train images randomly flipped left-right when `flip`.

The module owns every split, the test split included: `masks` (see `mask_sources.mask_settings`)
says which masks the test images carry. What a stage loads is kept in memory, keyed by its content
(files, VQGAN, masks), so `prepare_data` and `setup` load it once, and the points of a sweep in one
process share it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from maskgit.data.images import LAB_TEST, LAB_TRAIN, Normalization, read_image, read_mask
from maskgit.data.layout import LabLayout, scan_layout
from maskgit.data.mask_sources import mask_settings, test_pixels
from maskgit.data.synthetic import make_synthetic_dataset
from maskgit.data.token_cache import TokenCache, encode_tensors
from maskgit.decoding.iterative import pixel_to_token_mask
from maskgit.errors import ConfigError
from maskgit.models.vqgan import VQGAN
from maskgit.utils.identity import BoundedCache, files_digest, module_digest, tensor_digest

SERVE = ("tokens", "images")
_LOADED = BoundedCache(4)  # what stages loaded, by content (files, VQGAN, masks), in this process


class ImageSet(Dataset):
    """uint8 images (N, 3, H, W) kept in memory; optional random horizontal flip per item."""

    def __init__(self, images: Tensor, flip: bool = False):
        self.images, self.flip = images, flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        image = self.images[i]
        return image.flip(-1) if self.flip and torch.rand(()) < 0.5 else image


def normalized_batch(images: list[Tensor]) -> Tensor:
    """collate_fn of ImageSet: stack uint8 images and normalise them as the lab does."""
    return LAB_TRAIN.normalize(torch.stack(images))


class InpaintingSet(Dataset):
    """Test items: masked-image tokens, which tokens are masked, and the pixels behind them."""

    def __init__(self, tokens: Tensor, masks: Tensor, masked_images: Tensor,
                 gt_tokens: Tensor | None, gt_images: Tensor | None, labels: Tensor | None = None):
        """`labels` (N,): class ids of labelled test images (label-conditioned inpainting)."""
        self.tokens, self.masks, self.masked_images = tokens, masks, masked_images
        self.gt_tokens, self.gt_images, self.labels = gt_tokens, gt_images, labels
        self.token_masks = pixel_to_token_mask(masks)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"index": i, "tokens": self.tokens[i], "masked": self.token_masks[i],
                "pixel_known": self.masks[i], "masked_image": self.masked_images[i]}
        if self.gt_tokens is not None:
            item["gt_tokens"] = self.gt_tokens[i]
            item["gt_image"] = self.gt_images[i]
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


class ImageDataModule(L.LightningDataModule):
    """A data set in the lab's layout (the cat faces, or any in it): train and val images, or their
    VQGAN tokens, and the masked test split with its masks; `LabelledDataModule` adds classes."""

    test_norm: Normalization = LAB_TEST  # the test images' normalisation (the lab's own for its test set)
    num_classes = 0  # unlabelled

    def __init__(self, root: str, batch_size: int = 64, num_workers: int = 0,
                 cache_dir: str = ".cache/tokens", encode_batch_size: int = 128,
                 encode_device: str = "auto", limit: dict[str, int | None] | None = None,
                 check_images: bool = True, pin_memory: bool = True,
                 synthetic: dict[str, int] | None = None, serve: str = "tokens", flip: bool = True,
                 masks: dict[str, Any] | None = None):
        """`batch_size` is per device (each DDP process loads this many); `masks`: the test
        images' masks (the `masks:` block of eval.py, see `mask_sources.mask_settings`; None: the data
        set's own mask64/)."""
        super().__init__()
        if serve not in SERVE:
            raise ConfigError(f"data.serve must be one of {', '.join(SERVE)}, found {serve!r}")
        self.serve, self.flip = serve, flip
        self.root = Path(root)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.token_cache = TokenCache(cache_dir)
        self.encode_batch_size = encode_batch_size
        self.encode_device = encode_device
        self.limit = dict(limit or {})
        self.check_images, self.pin_memory = check_images, pin_memory
        self.synthetic = dict(synthetic) if synthetic else None
        self.masks = mask_settings(masks)
        self.vqgan: VQGAN | None = None
        self._layout: LabLayout | None = None
        self._scanned: set[str] = set()
        self.train_set = self.val_set = self.test_set = None
        self.read = read_image  # a file -> uint8 (3, H, W), checked

    # -- wiring ---------------------------------------------------------------------------------
    def use_tokenizer(self, vqgan: VQGAN) -> None:
        self.vqgan = vqgan

    def check(self, splits: Collection[str] = ("train", "val")) -> LabLayout:
        """Validate the splits the run uses before any work starts (one-line DataError otherwise)."""
        if self.synthetic is not None:
            make_synthetic_dataset(self.root, **self.synthetic)
        self._layout = scan_layout(self.root, splits=splits, check_images=self.check_images, limit=self.limit)
        self._scanned = set(splits)
        return self._layout

    def layout_with(self, *splits: str) -> LabLayout:
        """The layout with `splits` checked: the last check's, or a new one that adds them."""
        if self._layout is None or not set(splits) <= self._scanned:
            self.check(sorted(self._scanned | set(splits)))
        return self._layout

    @property
    def layout(self) -> LabLayout:
        return self._layout if self._layout is not None else self.check()

    def _device(self) -> torch.device:
        if self.encode_device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.encode_device)

    def _tokenizer(self) -> VQGAN:
        if self.vqgan is None:
            raise ConfigError("ImageDataModule needs a VQGAN: call use_tokenizer(vqgan) first")
        return self.vqgan

    def _tokens(self, split: str, files, norm) -> Tensor:
        return self.token_cache.tokens(split, self._tokenizer(), files, norm, self.encode_batch_size,
                                       self._device())

    # -- Lightning hooks ------------------------------------------------------------------------
    def prepare_data(self) -> None:
        # One process per node, before `setup`: encode what this trainer run needs (kept in memory,
        # so that `setup` in this process does not load it again).
        fn = self.trainer.state.fn if self.trainer is not None else None
        if fn in ("test", "predict"):
            self.inpainting_set()
        elif self.serve == "tokens":
            self.token_splits()

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate") and self.train_set is None and self.serve == "images":
            layout = self.layout_with("train", "val")
            self.train_set = ImageSet(torch.stack([read_image(f) for f in layout.train_files]), self.flip)
            self.val_set = ImageSet(torch.stack([read_image(f) for f in layout.val_files]))
        if stage in ("fit", "validate") and self.train_set is None:
            train, val = self.token_splits()
            self.train_set, self.val_set = TensorDataset(train), TensorDataset(val)
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self.inpainting_set()

    # -- what the stages load, once per content ---------------------------------------------------
    def token_splits(self) -> tuple[Tensor, Tensor]:
        """Tokens of the train and val images (encoded once, then from the token cache)."""
        layout = self.layout_with("train", "val")
        vqgan = self._tokenizer()
        key = ("fit", module_digest(vqgan), files_digest(layout.train_files), files_digest(layout.val_files))
        return _LOADED.get_or_make(key, lambda: (self._tokens("train", layout.train_files, LAB_TRAIN),
                                   self._tokens("val", layout.val_files, LAB_TRAIN)))

    def inpainting_set(self) -> InpaintingSet:
        """The test split with the masks `self.masks` asks for, and its tokens."""
        layout = self.layout_with("test")
        files = [*layout.test_files, *layout.mask_files, *(layout.gt_files or [])]
        masks = repr(sorted(self.masks.items()))
        key = ("test", module_digest(self._tokenizer()), files_digest(files), masks)
        return _LOADED.get_or_make(key, lambda: self._build_inpainting_set(layout))

    def _build_inpainting_set(self, layout: LabLayout) -> InpaintingSet:
        gt_tokens = gt_images = None
        if layout.gt_files is not None:
            gt_tokens = self._tokens("gt", layout.gt_files, LAB_TEST)
            gt_images = torch.stack([read_image(f) for f in layout.gt_files])
        if self.masks["source"] == "dataset":  # the files as given (gt/ optional)
            known = torch.stack([read_mask(f) for f in layout.mask_files])
            masked_images = torch.stack([read_image(f) for f in layout.test_files])
            tokens = self._tokens("test", layout.test_files, LAB_TEST)
        else:  # gt/ with generated masks
            masked_images, known, gt_images = test_pixels(layout, self.masks)
            tokens = self._pixel_tokens(f"masked-{self.masks['source']}", masked_images)
        return InpaintingSet(tokens, known, masked_images, gt_tokens, gt_images)

    def _pixel_tokens(self, name: str, images: Tensor) -> Tensor:
        """Tokens (N, h*w) of in-memory uint8 test images, keyed by their content in the token cache."""
        vqgan, norm = self._tokenizer(), self.test_norm
        digest = "images:" + tensor_digest(images)
        path = self.token_cache.path_for_digest(name, len(images), vqgan, digest, norm)
        what = f"encoding {len(images):,} {name} images"

        def encode(device: torch.device) -> Tensor:
            return encode_tensors(vqgan, images, norm, self.encode_batch_size, device, what)

        return self.token_cache.cached(path, vqgan, self._device(), what, encode)

    def files_key(self, files: list[Path]) -> str:
        """The content key of image files as this module reads them (reference features are cached by it)."""
        return files_digest(files)

    def reference_files(self) -> tuple[list[Path], list[int] | None]:
        """The val files (and labels, for labelled data): what generated samples are measured against."""
        return self.layout_with("val").val_files, None

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool = False) -> DataLoader:
        collate = normalized_batch if isinstance(dataset, ImageSet) else None
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
                          collate_fn=collate,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=self.pin_memory and torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        # Each process takes every world_size-th image, with no padding: duplicated images would
        # count twice in the synchronised metrics (Lightning's DistributedSampler pads).
        world = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        shard = self.test_set if world == 1 else Subset(self.test_set, range(rank, len(self.test_set), world))
        return self._loader(shard, shuffle=False)

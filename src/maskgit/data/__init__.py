"""The data: the lab's layout and its checks, images and masks, the token cache, the datamodule.

Names load on first use, so that the networks' code can read `maskgit.data.images` without
importing Lightning through the datamodule."""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ImageDataModule": "maskgit.data.datamodule", "InpaintingSet": "maskgit.data.datamodule",
    "LabLayout": "maskgit.data.layout", "scan_layout": "maskgit.data.layout",
    "TokenCache": "maskgit.data.token_cache", "mask_settings": "maskgit.data.mask_sources",
    "test_pixels": "maskgit.data.mask_sources", "generate_masks": "maskgit.data.masks",
    "read_image": "maskgit.data.images", "read_mask": "maskgit.data.images",
    "make_synthetic_dataset": "maskgit.data.synthetic",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'maskgit.data' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)

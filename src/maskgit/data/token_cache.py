"""Encode each split once with the frozen VQGAN and keep the tokens on disk.

A cache file is keyed (`maskgit.utils.identity.key`) by the VQGAN's digest, the image files' names and
contents and the normalisation, so it is reused across runs and processes and rebuilt when any of
them changes.
Files are written atomically and sealed (size and sha256, `maskgit.utils.integrity`): a truncated,
zeroed or unsealed cache file is named in a warning and encoded again, never used. Processes that
need the same file at once (sweep workers, DDP ranks, nodes) encode it once: the others wait on its
lock (`maskgit.utils.locks`) and read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from maskgit.data.images import Normalization, read_image
from maskgit.models.vqgan import VQGAN
from maskgit.utils.identity import files_digest, key, module_digest
from maskgit.utils.integrity import load_cached, save_torch_sealed, torch_payload
from maskgit.utils.locks import build_once
from maskgit.utils.progress import is_rank_zero, progress

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # part of every cache file's key: bump when the tokens or the key scheme change
# files_digest and module_digest live in maskgit.utils.identity; imported above, they stay importable here


def load_images(files: Sequence[Path], norm: Normalization) -> Tensor:
    """Read and normalise images into one float tensor (N, 3, 64, 64)."""
    return norm.normalize(torch.stack([read_image(f) for f in files]))


@torch.no_grad()
def encode_images(vqgan: VQGAN, files: Sequence[Path], norm: Normalization,
                  batch_size: int, device: torch.device, description: str = "encoding") -> Tensor:
    """Tokens (N, h*w) int16 of `files`, encoded in batches on `device`."""
    out = []
    with progress(description, len(files)) as advance:
        for start in range(0, len(files), batch_size):
            images = load_images(files[start:start + batch_size], norm).to(device)
            out.append(vqgan.tokenize(images).to("cpu", torch.int16))
            advance(len(images))
    return torch.cat(out) if out else torch.zeros(0, vqgan.latent_resolution**2, dtype=torch.int16)


@torch.no_grad()
def encode_tensors(vqgan: VQGAN, images: Tensor, norm: Normalization, batch_size: int, device: torch.device,
                   description: str = "encoding") -> Tensor:
    """Tokens (N, h*w) int16 of in-memory uint8 images (N, 3, H, W), encoded in batches on `device`."""
    out = []
    with progress(description, len(images)) as advance:
        for batch in images.split(batch_size):
            out.append(vqgan.tokenize(norm.normalize(batch).to(device)).to("cpu", torch.int16))
            advance(len(batch))
    return torch.cat(out) if out else torch.zeros(0, vqgan.latent_resolution**2, dtype=torch.int16)


def _tokens_and_labels(path: Path) -> tuple[Tensor, Tensor]:
    payload = torch_payload(path)
    return payload["tokens"], payload.get("labels", torch.empty(0, dtype=torch.long))


class TokenCache:
    """Token files under `cache_dir`, one per (split, VQGAN, files, normalisation)."""

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)

    def path_for(self, split: str, vqgan: VQGAN, files: Sequence[Path], norm: Normalization) -> Path:
        return self.path_for_digest(split, len(files), vqgan, files_digest(files), norm)

    def path_for_digest(self, name: str, count: int, vqgan: VQGAN, data_digest: str,
                        norm: Normalization) -> Path:
        """The cache file of `count` images whose content has `data_digest` (`files_digest` of image
        files, or e.g. "images:" + `tensor_digest` of in-memory ones), encoded by `vqgan` after `norm`."""
        parts = {"version": CACHE_VERSION, "vqgan": module_digest(vqgan), "data": data_digest,
                 "norm": repr(norm)}
        return self.cache_dir / f"{name}-{count}-{key(parts)}.pt"

    def tokens(self, split: str, vqgan: VQGAN, files: Sequence[Path], norm: Normalization,
               batch_size: int = 128, device: torch.device | str = "cpu") -> Tensor:
        """Cached tokens (N, h*w) int64 of `files`; encodes and saves them on a miss."""
        what = f"encoding {len(files):,} {split} images"
        return self.cached(self.path_for(split, vqgan, files, norm), vqgan, device, what,
                           lambda dev: encode_images(vqgan, files, norm, batch_size, dev, description=what))

    def cached(self, path: Path, vqgan: VQGAN, device: torch.device | str, what: str,
               encode: Callable[[torch.device], Tensor], labels: Tensor | None = None) -> Tensor:
        """The tokens sealed in `path`, or `encode(device)` with the VQGAN in eval mode there, saved;
        `what` ("encoding N test images") is logged on a miss. `labels` (labelled data) are stored
        with the tokens, and a file whose labels differ is encoded again."""
        def find() -> Tensor | None:
            found = load_cached(path, _tokens_and_labels, "token cache")
            if found is not None and (labels is None or torch.equal(found[1], labels)):
                return found[0].long()
            return None

        return build_once(path, find, lambda: self._encode(path, vqgan, device, what, encode, labels))

    @staticmethod
    def _encode(path: Path, vqgan: VQGAN, device: torch.device | str, what: str,
                encode: Callable[[torch.device], Tensor], labels: Tensor | None) -> Tensor:
        """Encode and save (the caller holds the cache file's lock)."""
        if is_rank_zero():  # other DDP processes may encode too; one line is enough
            log.info("%s into %s", what, path)
        was_training, home = vqgan.training, next(vqgan.parameters()).device
        vqgan.eval().to(device)
        try:
            tokens = encode(torch.device(device))
        finally:
            vqgan.train(was_training).to(home)
        payload = {"tokens": tokens} if labels is None else {"tokens": tokens, "labels": labels}
        save_torch_sealed(payload, path)
        return tokens.long()

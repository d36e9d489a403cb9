"""FID with torchmetrics on torch-fidelity's InceptionV3, and a cache of the reference statistics.

A subset FID (e.g. the test images whose ground truth is in neither train nor val) is a second
metric: `build_fid` again, `load_or_compute_reference` with the subset's own digest, then feed it
only the subset's generated images.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor
from torch_fidelity import feature_extractor_inceptionv3 as tf_inception
from torchmetrics.image.fid import FrechetInceptionDistance

from maskgit.errors import ConfigError
from maskgit.utils.atomic import save_torch

RESIZE_NOTE = (
    "uint8 images resized to 299x299 by torch-fidelity's TF1-style bilinear resize "
    "(interpolate_bilinear_2d_like_tensorflow1x, align_corners=False, no antialias), "
    "as in the original TensorFlow FID; torchmetrics antialias=False"
)
FEATURES = 2048  # the standard FID layer; torch-fidelity also offers 64, 192 and 768
REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")

ReferenceStats = dict[str, Tensor]
"""The metric's real-feature states, keyed by the names in `REAL_STATES`."""


def build_fid(weights_path: str | os.PathLike | None, features: int = FEATURES) -> FrechetInceptionDistance:
    """FID on torch-fidelity's 2048-d InceptionV3 features of uint8 (B,3,H,W) images.

    `weights_path=None` downloads torch-fidelity's weights once into the torch hub cache.
    Real statistics survive `reset()`, so the reference is computed or loaded only once.
    """
    if weights_path is None:
        try:
            return _fid(None, features)
        except OSError as err:  # URLError, timeouts and an unwritable hub dir are all OSErrors
            raise ConfigError(
                "FID needs the Inception weights: set metrics.fid.weights_path="
                "/path/to/pt_inception-2015-12-05-6726825d.pth, go online once, or set "
                f"metrics.fid.enabled=false (download failed: {_one_line(err)})"
            ) from err
    path = Path(weights_path)
    if not path.is_file():
        raise ConfigError(f"metrics.fid.weights_path={path}: no such file (the FID Inception weights)")
    try:
        return _fid(str(path), features)
    except Exception as err:  # anything the load raises means the file is not those weights
        raise ConfigError(
            f"metrics.fid.weights_path={path} is not torch-fidelity's InceptionV3 state dict "
            f"({type(err).__name__}: {_one_line(err)})"
        ) from err


def load_or_compute_reference(
    fid: FrechetInceptionDistance,
    images_fn: Callable[[], Iterable[Tensor]],
    *,
    data_digest: str,
    weights_path: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    rank: int = 0,
) -> Path | None:
    """Fill `fid`'s real statistics from the cache, or compute them once and cache them.

    `images_fn()` yields uint8 (B,3,H,W) batches of the reference images; it is called only on a
    cache miss. The cache file name hashes `data_digest` (the caller's digest of the reference
    files' contents), the Inception weights' content and the resize choice.

    DDP: call on every rank with its `rank`. torchmetrics sums states over processes in
    `compute()`, so only rank 0 loads (or computes and writes) the statistics; every other rank
    keeps zero real statistics and returns None without touching the images or the cache.
    Returns the cache file on rank 0.
    """
    _set_real_states(fid, None)
    if rank != 0:
        return None
    parts = {
        "data": data_digest,
        "extractor": extractor_digest(weights_path),
        "features": int(fid.real_features_sum.shape[0]),
        "resize": RESIZE_NOTE,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    cache = Path(cache_dir) / f"fid_reference_{key}.pt"
    if cache.is_file():
        _set_real_states(fid, torch.load(cache, map_location="cpu", weights_only=True)["stats"])
        return cache
    with torch.no_grad():
        for images in images_fn():
            fid.update(images.to(fid.device), real=True)
    stats = {name: getattr(fid, name).detach().cpu() for name in REAL_STATES}
    save_torch({"stats": stats, "key_parts": parts}, cache)
    return cache


def extractor_digest(weights_path: str | os.PathLike | None) -> str:
    """Content hash of the Inception weights; for the download, of torch-fidelity's hub copy."""
    if weights_path is not None:
        return _sha256(Path(weights_path))
    name = os.path.basename(tf_inception.URL_INCEPTION_V3)
    downloaded = Path(torch.hub.get_dir()) / "checkpoints" / name
    return "torch-fidelity-default:" + (_sha256(downloaded) if downloaded.is_file() else name)


def _fid(weights_path: str | None, features: int) -> FrechetInceptionDistance:
    return FrechetInceptionDistance(
        feature=features,
        reset_real_features=False,
        feature_extractor_weights_path=weights_path,
        antialias=False,  # TF1-style resize, see RESIZE_NOTE
    )


def _set_real_states(fid: FrechetInceptionDistance, stats: ReferenceStats | None) -> None:
    """Set the real statistics to `stats`, or to zeros (the metric's defaults) for None."""
    for name in REAL_STATES:
        current = getattr(fid, name)
        value = torch.zeros_like(current) if stats is None else stats[name]
        if value.shape != current.shape:
            raise ValueError(f"cached {name} has shape {tuple(value.shape)}, not {current.shape}")
        setattr(fid, name, value.to(device=current.device, dtype=current.dtype))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0].rstrip(":") if text else type(err).__name__

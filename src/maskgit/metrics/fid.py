"""FID and KID with intervals, from Inception features kept per image.

The network is torch-fidelity's InceptionV3 as torchmetrics wraps it (`NoTrainInceptionV3`), loaded
from `metrics.fid.weights_path` or, by default, from the packaged genuine weights
(`maskgit.metrics.inception`). Features are kept per image, not as running sums, because an
interval needs them: FID's 95% interval is a bootstrap over images, KID is torch-fidelity's
mean and std over subsets. Reference features are computed once and cached on disk, keyed by the
reference files' content, the weights' sha256, the layer and the resize.

FID is computed in float64 from the n x n cross-Gram matrix of the centred features: with
S_a = X_a'X_a / (n_a - 1), tr sqrt(S_a S_b) is the sum of the singular values of
X_a X_b' / sqrt((n_a - 1)(n_b - 1)). That equals pytorch-fid's sqrtm of the d x d product (tested
against torch-fidelity's own `fid_statistics_to_metric`) at a fraction of its cost when n < d, which
is what makes a bootstrap of a 2048-d FID affordable on a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch_fidelity.metric_kid import kid_features_to_metric
from torchmetrics import Metric
from torchmetrics.image.fid import NoTrainInceptionV3
from torchmetrics.utilities import dim_zero_cat

from maskgit.errors import ConfigError
from maskgit.metrics.inception import default_weights
from maskgit.utils.identity import BoundedCache, file_identity, key
from maskgit.utils.integrity import load_cached, save_torch_sealed, torch_payload
from maskgit.utils.locks import build_once
from maskgit.utils.progress import progress

RESIZES = {
    # uint8 images, torch-fidelity's TF1-style bilinear resize to 299 (the TF FID's; the standard)
    "torch-fidelity": False,
    # the lab script's pytorch-fid way: torch bilinear interpolation (align_corners=False) to 299
    "lab": True,
}
FEATURE_SIZES = (64, 192, 768, 2048)


@dataclass(frozen=True)
class FIDSettings:
    """What decides an FID: the network, its layer, the resize, and the interval's sampling."""

    weights_path: str | None = None  # None: the packaged genuine weights
    features: int = 2048
    resize: str = "torch-fidelity"
    bootstrap: int = 100  # replicates for the 95% interval (0: none)
    kid_subsets: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.features not in FEATURE_SIZES:
            raise ConfigError(f"metrics.fid.features must be one of {FEATURE_SIZES}, got {self.features}")
        if self.resize not in RESIZES:
            raise ConfigError(f"metrics.fid.resize must be one of {', '.join(RESIZES)}, got {self.resize!r}")
        if self.bootstrap < 0 or self.kid_subsets < 1:
            raise ConfigError("metrics.fid.bootstrap must be >= 0 and metrics.fid.kid_subsets >= 1")


class InceptionExtractor(torch.nn.Module):
    """uint8 (B,3,H,W) images -> (B, features) float64 Inception pool features."""

    def __init__(self, settings: FIDSettings):
        super().__init__()
        path = Path(settings.weights_path) if settings.weights_path else default_weights()
        if not path.is_file():
            raise ConfigError(f"metrics.fid.weights_path={path}: no such file (the FID Inception weights)")
        self.weights_path, self.weights_sha256 = str(path), file_identity(path)
        self.features, self.resize = settings.features, settings.resize
        try:
            self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(settings.features)],
                                          feature_extractor_weights_path=str(path),
                                          antialias=RESIZES[settings.resize])
        except Exception as err:  # anything the load raises means the file is not those weights
            raise ConfigError(f"metrics.fid.weights_path={path} is not torch-fidelity's InceptionV3 "
                              f"state dict ({type(err).__name__}: {_one_line(err)})") from err

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.net(images).reshape(len(images), -1).double()

    def identity(self) -> dict[str, str | int]:
        return {"weights_sha256": self.weights_sha256, "features": self.features, "resize": self.resize}


_EXTRACTORS: BoundedCache[FIDSettings, InceptionExtractor] = BoundedCache(4)


def extractor(settings: FIDSettings) -> InceptionExtractor:
    """One network per (weights, layer, resize) in a process, the last few kept; the sampling
    settings do not matter."""
    net = FIDSettings(settings.weights_path, settings.features, settings.resize)
    return _EXTRACTORS.get_or_make(net, lambda: InceptionExtractor(net))


class FeatureBank(Metric):
    """Features of generated images with their indices; torchmetrics gathers them across processes."""

    full_state_update = False

    def __init__(self, net: InceptionExtractor):
        super().__init__()
        self.net = net
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")

    def update(self, images: Tensor, index: Tensor) -> None:
        self.features.append(self.net(images))
        self.index.append(index.to(self.device).long())

    def compute(self) -> tuple[Tensor, Tensor]:
        """(index, features) of every image seen by every process, sorted by index."""
        index, features = dim_zero_cat(self.index), dim_zero_cat(self.features)
        order = index.argsort()
        return index[order].cpu(), features[order].cpu()


def reference_features(net: InceptionExtractor, images_fn: Callable[[], Iterable[Tensor]], *,
                       data_digest: str, cache_dir: str | os.PathLike, total: int = 0,
                       what: str = "reference images") -> Tensor:
    """The reference images' features: from the disk cache, or computed once and cached.

    `images_fn()` yields uint8 batches; it is called only on a cache miss. The file name hashes
    `data_digest` (the caller's digest of the files' contents) and the network's identity.
    `total` (the number of images, when known) gives the progress bar its length, `what` its words.
    """
    parts = {"data": data_digest, **net.identity()}
    path = Path(cache_dir) / f"inception_features_{key(parts, length=24)}.pt"
    return build_once(path, lambda: load_cached(path, lambda p: torch_payload(p)["features"],
                                                "reference features"),
                      lambda: _compute_reference(net, images_fn, parts, path, total, what))


def _compute_reference(net: InceptionExtractor, images_fn: Callable[[], Iterable[Tensor]],
                       parts: dict, path: Path, total: int, what: str) -> Tensor:
    """Compute and save the reference features (the caller holds the cache file's lock)."""
    device = next(net.parameters()).device
    features = []
    with progress(f"Inception features of {total:,} {what}", total) as advance:
        for images in images_fn():
            features.append(net(images.to(device)).cpu())
            advance(len(images))
    features = torch.cat(features)
    save_torch_sealed({"features": features, "key_parts": parts}, path)
    return features


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """FID between two feature sets (rows are images), in float64 (see the module docstring)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    xa, xb = _gram_factor(a - mu_a), _gram_factor(b - mu_b)
    scale = ((len(a) - 1) * (len(b) - 1)) ** 0.5
    trace_sqrt = torch.linalg.svdvals(xa @ xb.T).sum() / scale
    trace_a, trace_b = (xa**2).sum() / (len(a) - 1), (xb**2).sum() / (len(b) - 1)
    return float(((mu_a - mu_b) ** 2).sum() + trace_a + trace_b - 2 * trace_sqrt)


def _gram_factor(x: Tensor) -> Tensor:
    """A matrix with the same Gram products X'X as `x` and at most d rows (its R factor when n > d)."""
    return torch.linalg.qr(x, mode="r").R if len(x) > x.shape[1] else x


def fid_interval(a: Tensor, b: Tensor, fid: float, *, paired: bool, replicates: int,
                 seed: int) -> tuple[float, float]:
    """95% interval of FID over bootstrap resamples of the images, centred on the measured FID.

    `paired`: row i of `a` and of `b` belong together (an inpainted image and its ground truth), so
    one resample of test images is drawn for both; otherwise each set is resampled on its own.
    A resample repeats images, which by itself raises FID (fewer distinct images, a larger
    finite-sample bias), so the replicates' 2.5% and 97.5% quantiles are taken relative to their mean
    and placed around `fid`, the FID of the full sets: the interval shows the spread, not the shift.
    """
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(replicates):
        ia = torch.randint(len(a), (len(a),), generator=gen)
        ib = ia if paired else torch.randint(len(b), (len(b),), generator=gen)
        values.append(frechet_distance(a[ia], b[ib]))
    boot = torch.tensor(values, dtype=torch.float64)
    lo, hi = (boot.quantile(torch.tensor([0.025, 0.975], dtype=torch.float64)) - boot.mean()).tolist()
    return fid + lo, fid + hi


def kernel_inception_distance(a: Tensor, b: Tensor, *, subsets: int, seed: int) -> tuple[float, float]:
    """torch-fidelity's KID (cubic polynomial kernel): mean and std over `subsets` subsets.

    A subset holds min(1000, half the smaller set) images, so subsets differ and the std means something.
    """
    size = max(2, min(1000, min(len(a), len(b)) // 2))
    out = kid_features_to_metric(a.double(), b.double(), kid_subsets=subsets, kid_subset_size=size,
                                 rng_seed=seed, verbose=False)
    return float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"])


def score(generated: Tensor, reference: Tensor, settings: FIDSettings, *, paired: bool,
          prefix: str = "fid") -> dict[str, float]:
    """FID, its 95% interval (`<prefix>_ci95_low/high`) and KID of `generated` against `reference`."""
    if len(generated) < 2 or len(reference) < 2:
        raise ConfigError(f"FID needs at least 2 images on each side, got {len(generated)} "
                          f"and {len(reference)}")
    fid = frechet_distance(generated, reference)
    out = {prefix: fid}
    if settings.bootstrap:
        lo, hi = fid_interval(generated, reference, fid, paired=paired, replicates=settings.bootstrap,
                              seed=settings.seed)
        out[f"{prefix}_ci95_low"], out[f"{prefix}_ci95_high"] = lo, hi
    kid_name = "kid" + prefix[len("fid"):]
    out[f"{kid_name}_mean"], out[f"{kid_name}_std"] = kernel_inception_distance(
        generated, reference, subsets=settings.kid_subsets, seed=settings.seed)
    return out


def fid_settings(cfg) -> FIDSettings | None:
    """A run config's `metrics.fid` (and `seed`) as settings (None when disabled). The network is
    loaded now, once per process, so that a bad weights file stops the run before any work."""
    fid = cfg.metrics.fid
    if not fid.enabled:
        return None
    settings = FIDSettings(weights_path=fid.weights_path, features=int(fid.features),
                           resize=str(fid.get("resize", "torch-fidelity")),
                           bootstrap=int(fid.get("bootstrap", 100)),
                           kid_subsets=int(fid.get("kid_subsets", 100)),
                           seed=int(cfg.seed))
    extractor(settings)
    return settings


def settings_record(settings: FIDSettings) -> dict:
    """What metrics.json says about the FID: the settings and the weights' sha256."""
    net = extractor(settings)
    return {**asdict(settings), "weights_path": net.weights_path, "weights_sha256": net.weights_sha256,
            "resize_note": RESIZE_NOTES[settings.resize]}


RESIZE_NOTES = {
    "torch-fidelity": "uint8 images resized to 299x299 by torch-fidelity's TF1-style bilinear resize "
                      "(align_corners=False, no antialias), as in the original TensorFlow FID",
    "lab": "images resized to 299x299 by torch bilinear interpolation (align_corners=False), "
           "the lab's pytorch-fid way; normalised (x-128)/128 as in the TF graph",
}


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0].rstrip(":") if text else type(err).__name__

"""LPIPS perceptual loss (VGG16 backbone) for stage-1 training, frozen and outside the checkpoint.

torchmetrics bundles LPIPS's linear heads; the VGG16 backbone is torchvision's ImageNet file
`vgg16-397923af.pth`, read from `weights_path` or the torch hub cache ($TORCH_HOME/hub/checkpoints),
downloaded there once when online. Without it the user gets one line, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.functional.image import lpips as tm_lpips
from torchmetrics.functional.image.lpips import NetLinLayer, ScalingLayer, _normalize_tensor
from torchvision.models import VGG16_Weights
from torchvision.models.vgg import cfgs, make_layers

from maskgit.data.images import Normalization
from maskgit.errors import ConfigError
from maskgit.models.checkpoint import extract_state_dict, load_strict, read_weights_file

VGG16_URL = VGG16_Weights.IMAGENET1K_V1.url
VGG16_FILE = Path(VGG16_URL).name  # vgg16-397923af.pth
SETTING = "model.loss.perceptual_weights"
LPIPS_HEADS = Path(tm_lpips.__file__).parent / "lpips_models" / "vgg.pth"  # bundled with torchmetrics


def hub_vgg16_path() -> Path:
    """Where torchvision keeps the file: $TORCH_HOME/hub/checkpoints/vgg16-397923af.pth."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def _missing(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"the perceptual loss needs the VGG16 weights {VGG16_FILE}: put the file at {path} "
        f"(or set {SETTING}=/path/to/{VGG16_FILE}), or turn the loss off with "
        f"model.loss.perceptual_weight=0 ({why})")


def resolve_vgg16_file(weights_path: str | os.PathLike | None) -> Path:
    """The VGG16 file to read: `weights_path` as given, else the hub cache (downloaded if online)."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise _missing(path, "no such file")
        return path
    path = hub_vgg16_path()
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(VGG16_URL, str(path), progress=False)
        except Exception as err:  # noqa: BLE001 - offline, proxy, unwritable cache: the same fix
            raise _missing(path, f"download failed: {' '.join(str(err).split())[:120]}") from None
    return path


class LPIPSVGG(nn.Module):
    """LPIPS on VGG16: unit-normalised relu1_2 ... relu5_3 feature differences, weighted by the
    learned 1x1 heads and averaged over positions (torchmetrics' network, built without the
    unused VGG classifier)."""

    CUTS = (0, 4, 9, 16, 23, 30)  # vgg16.features indices ending at relu1_2, ..., relu5_3
    CHANNELS = (64, 128, 256, 512, 512)

    def __init__(self):
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.features = make_layers(cfgs["D"])[: self.CUTS[-1]]  # torchvision's VGG16 layer names
        self.lins = nn.ModuleList(NetLinLayer(c, use_dropout=True) for c in self.CHANNELS)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Images in [-1, 1] -> LPIPS distance per image (B,)."""
        h = self.scaling_layer(torch.cat([x, y]))
        total = 0
        for lin, start, end in zip(self.lins, self.CUTS[:-1], self.CUTS[1:], strict=True):
            h = self.features[start:end](h)
            fx, fy = _normalize_tensor(h).chunk(2)
            total = total + lin((fx - fy) ** 2).mean(dim=(1, 2, 3))
        return total


def build_lpips_vgg(weights_path: str | os.PathLike | None) -> LPIPSVGG:
    """The frozen LPIPS network: bundled linear heads, VGG16 backbone from the file."""
    path = resolve_vgg16_file(weights_path)
    net = LPIPSVGG()
    heads = torch.load(LPIPS_HEADS, map_location="cpu", weights_only=True)
    net.lins.load_state_dict({k.replace("lin", "", 1): v for k, v in heads.items()}, strict=True)
    state = extract_state_dict(read_weights_file(path, SETTING))
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    features = features or state  # a file holding vgg16.features' state dict alone
    load_strict(net.features, features, f"VGG16 weights {path}")
    return net.eval().requires_grad_(False)


class PerceptualLoss(nn.Module):
    """Mean LPIPS distance between two batches of images in the `norm`-normalised space.

    The network is kept out of the module tree: it is not a parameter, not in `state_dict` (so not
    in checkpoints) and not seen by optimisers; it follows the input's device on first use.
    """

    def __init__(self, norm: Normalization, weights_path: str | os.PathLike | None = None):
        super().__init__()
        self.__dict__["net"] = build_lpips_vgg(weights_path)
        self.register_buffer("mean", torch.tensor(norm.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(norm.std).view(1, 3, 1, 1), persistent=False)

    def _to_lpips_range(self, x: Tensor) -> Tensor:
        return (x * self.std + self.mean) * 2 - 1  # LPIPS takes [-1, 1]; no clamp, keep gradients

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        net: nn.Module = self.__dict__["net"]
        if next(net.parameters()).device != x.device:
            net.to(x.device)
        return net(self._to_lpips_range(x), self._to_lpips_range(y)).mean()

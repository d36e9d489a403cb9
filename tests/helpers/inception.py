"""A stand-in for the FID Inception weights: random weights in torch-fidelity's exact format."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3


class _Unloaded(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 with its load step made a no-op: the layers keep their init."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return None


def make_inception_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a random InceptionV3 state dict that torch-fidelity (and torchmetrics) load as real.

    Convolutions get He-normal init so activations keep their scale through ~40 layers (PyTorch's
    default init shrinks them about 6x per layer); the 2048-d features then differ per image.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({}, path)  # placeholder for the no-op load; no download happens
    net = _Unloaded("inception-random", ["2048"], feature_extractor_weights_path=str(path))
    gen = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            with torch.no_grad():
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
    torch.save(net.state_dict(), path)
    return path

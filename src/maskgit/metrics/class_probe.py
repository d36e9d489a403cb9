"""Class consistency of generated samples: a small classifier the framework trains on real images.

A small CNN is trained on the real training images of the model's classes (with shifts, noise and
contrast jitter, so that it judges shapes rather than a sample's texture), and its accuracy on the
real val images is reported beside its accuracy on the generated samples (predicted class == the
class asked for). A linear probe on Inception features was tried first: it read 93% of the real
val digits right but 7% of generated digits that a person reads at a glance (texture shift), so
the pixel classifier is the measure. Trained once per (training files, settings) and cached sealed;
deterministic given its seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from maskgit.errors import ConfigError
from maskgit.utils.identity import key
from maskgit.utils.integrity import load_cached, save_torch_sealed, torch_payload
from maskgit.utils.progress import progress

log = logging.getLogger(__name__)
VERSION = 1  # part of the cache key: bump when the network or its training changes


@dataclass(frozen=True)
class ClassifierSettings:
    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0


class SmallClassifier(nn.Module):
    """uint8 images (B, 3, H, W) -> class logits; three conv blocks on the image at half size."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = F.avg_pool2d(images.float() / 127.5 - 1.0, 2)
        return self.head(self.features(x).mean((2, 3)))


def augment(x: Tensor, g: torch.Generator) -> Tensor:
    """Random shifts (up to 1/8 of the side), contrast and Gaussian noise, on uint8 images -> uint8."""
    b, _, h, w = x.shape
    pad = h // 8
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b), generator=g).tolist()
    shifted = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    contrast = 0.7 + 0.6 * torch.rand(b, 1, 1, 1, generator=g)
    mean = shifted.mean((1, 2, 3), keepdim=True)
    noisy = (shifted - mean) * contrast + mean + 25.0 * torch.randn(shifted.shape, generator=g)
    return noisy.clamp(0, 255).round().to(torch.uint8)


def train_classifier(images: Callable[[], Tensor], labels: Tensor, num_classes: int,
                     settings: ClassifierSettings, cache_path: Path | None = None) -> SmallClassifier:
    """A SmallClassifier trained on the uint8 images (N, 3, H, W) `images()` returns, with `labels`
    (N,), from `cache_path` when it holds one (sealed), else trained now and saved there."""
    model = SmallClassifier(num_classes)
    if cache_path is not None and (state := load_cached(cache_path, torch_payload, "classifier")) is not None:
        model.load_state_dict(state)
        return model.eval()
    if len(torch.unique(labels)) < 2:
        raise ConfigError("the class-consistency classifier needs training images of at least 2 classes")
    with torch.random.fork_rng():  # the run's own random state is left as it was
        torch.manual_seed(settings.seed)
        model = _fit(SmallClassifier(num_classes), images(), labels, settings)
    if cache_path is not None:
        save_torch_sealed(model.state_dict(), cache_path)
    return model


def _fit(model: SmallClassifier, images: Tensor, labels: Tensor,
         settings: ClassifierSettings) -> SmallClassifier:
    g = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    steps = settings.epochs * -(-len(images) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=steps)
    model.train()
    with progress(f"training the class-consistency classifier on {len(images):,} images", steps) as advance:
        for _ in range(settings.epochs):
            for batch in torch.randperm(len(images), generator=g).split(settings.batch_size):
                loss = F.cross_entropy(model(augment(images[batch], g)), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                advance(1)
    return model.eval()


def classifier_path(cache_dir: Path, data_key: str, num_classes: int, settings: ClassifierSettings) -> Path:
    parts = {"version": VERSION, "data": data_key, "classes": num_classes, **asdict(settings)}
    return Path(cache_dir) / f"classifier_{key(parts, length=24)}.pt"


@torch.no_grad()
def predict(model: SmallClassifier, images: Tensor, batch_size: int = 256) -> Tensor:
    return torch.cat([model(b).argmax(-1) for b in images.split(batch_size)]) if len(images) else \
        torch.zeros(0, dtype=torch.long)


def class_consistency(predicted: Tensor, wanted: Tensor, classes: Sequence[int]) -> dict[str, Any]:
    """Share of samples classified as the class they were generated for, overall and per class."""
    right = (predicted == wanted).double()
    return {"class_accuracy": float(right.mean()),
            "class_accuracy_per_class": {str(c): float(right[wanted == c].mean()) for c in classes
                                         if bool((wanted == c).any())}}

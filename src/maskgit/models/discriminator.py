"""PatchGAN discriminator for stage-1 training (taming-transformers' NLayerDiscriminator).

Each output logit judges one overlapping patch of the input: a 64x64 image with `n_layers=3` gives
6x6 logits, each seeing a 70x70 receptive field (clipped by the image).
"""

from __future__ import annotations

from torch import Tensor, nn


class NLayerDiscriminator(nn.Module):
    """Conv(4x4, stride 2) + LeakyReLU(0.2), then `n_layers` conv/BatchNorm/LeakyReLU stages whose
    width doubles (capped at 8x `channels`), the last one with stride 1, then a 1-channel conv."""

    def __init__(self, image_channels: int = 3, channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(image_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            # no conv bias: BatchNorm's shift does its job
            layers += [nn.Conv2d(channels * prev, channels * mult, 4, stride, 1, bias=False),
                       nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(channels * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> patch logits (B, 1, h, w)."""
        return self.main(x)


def _init_weights(m: nn.Module) -> None:
    # taming's weights_init: DCGAN-style N(0, 0.02) convs, N(1, 0.02) BatchNorm scales
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)

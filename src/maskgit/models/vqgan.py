"""The lab's VQGAN (stage 1), module for module, so its pretrained checkpoint loads strictly.

Attribute names and Sequential indices are part of the checkpoint format: do not rename or reorder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GroupNorm(nn.Module):
    # The lab wraps GroupNorm in a module with attribute `gn`; the key names depend on it.
    # `groups` (the lab: 32) where the channels allow, else the largest count dividing both. Group
    # counts leave the state dict unchanged, but one channel per group is instance norm: it removes
    # each channel's per-image mean, and with it the image's colours, before the decoder's last conv.
    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        groups = math.gcd(groups, channels)
        self.gn = nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.gn(x)


class Swish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int = 32):
        super().__init__()
        self.block = nn.Sequential(
            GroupNorm(in_channels, groups),
            Swish(),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            GroupNorm(out_channels, groups),
            Swish(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.channel_up = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.channel_up is None else self.channel_up(x)
        return skip + self.block(x)


class NonLocalBlock(nn.Module):
    """Single-head self-attention over the h*w positions of a feature map."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.norm = GroupNorm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        h_ = self.norm(x)
        q = self.q(h_).reshape(b, c, h * w).transpose(1, 2)  # b, hw, c
        k = self.k(h_).reshape(b, c, h * w)  # b, c, hw
        v = self.v(h_).reshape(b, c, h * w)  # b, c, hw
        attn = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)  # b, hw(query), hw(key)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class DownSample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class UpSample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    """64x64 image -> latent_dim x 16x16; down-samples after stages 2 and 4."""

    def __init__(self, image_channels: int, channels: list[int], latent_dim: int, groups: int = 32):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(image_channels, channels[0], 3, 1, 1)]
        for i in range(len(channels) - 1):
            layers += [ResidualBlock(channels[i], channels[i + 1], groups),
                       ResidualBlock(channels[i + 1], channels[i + 1], groups)]
            if i in (2, 4):
                layers.append(DownSample(channels[i + 1]))
        top = channels[-1]
        layers += [ResidualBlock(top, top, groups), NonLocalBlock(top, groups),
                   ResidualBlock(top, top, groups), GroupNorm(top, groups), Swish(),
                   nn.Conv2d(top, latent_dim, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """latent_dim x 16x16 -> 64x64 image; attention at 16x16, up-samples after stages 4 and 2."""

    def __init__(self, image_channels: int, channels: list[int], latent_dim: int,
                 latent_resolution: int, groups: int = 32):
        super().__init__()
        top = channels[-1]
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, top, 3, 1, 1), ResidualBlock(top, top, groups),
                                   NonLocalBlock(top, groups), ResidualBlock(top, top, groups)]
        in_ch, resolution = top, latent_resolution
        for i in reversed(range(len(channels))):
            for _ in range(3):
                layers.append(ResidualBlock(in_ch, channels[i], groups))
                in_ch = channels[i]
                if resolution == latent_resolution:
                    layers.append(NonLocalBlock(in_ch, groups))
            if i in (4, 2):
                layers.append(UpSample(in_ch))
                resolution *= 2
        layers += [GroupNorm(in_ch, groups), nn.Conv2d(in_ch, image_channels, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Codebook(nn.Module):
    def __init__(self, num_codebook_vectors: int, latent_dim: int, beta: float):
        super().__init__()
        self.beta = beta
        self.embedding = nn.Embedding(num_codebook_vectors, latent_dim)
        self.embedding.weight.data.uniform_(-1.0 / num_codebook_vectors, 1.0 / num_codebook_vectors)

    def nearest(self, z: Tensor) -> Tensor:
        """Row-major indices (B, h*w) of the nearest code (squared Euclidean) at each position."""
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        codes = self.embedding.weight
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(1)[None])
        return dist.argmin(dim=1).reshape(b, h * w)

    def lookup(self, indices: Tensor, height: int, width: int) -> Tensor:
        """Quantised map (B, C, h, w) for row-major indices (B, h*w)."""
        z_q = self.embedding(indices)  # b, hw, c
        return z_q.reshape(indices.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        indices = self.nearest(z)
        z_q = self.lookup(indices, z.shape[2], z.shape[3])
        loss = torch.mean((z_q.detach() - z) ** 2) + self.beta * torch.mean((z_q - z.detach()) ** 2)
        z_q = z + (z_q - z).detach()  # straight-through gradient
        return z_q, indices, loss


class VQGAN(nn.Module):
    """Lab VQGAN: `encode` -> (z_q, indices (B, 256), codebook loss); `decode(z_q)` -> image."""

    def __init__(self, image_channels: int = 3,
                 enc_channels: list[int] = (128, 128, 128, 256, 256, 512),
                 dec_channels: list[int] = (128, 128, 256, 256, 512),
                 latent_dim: int = 256, img_resolution: int = 64, latent_resolution: int = 16,
                 num_codebook_vectors: int = 1024, beta: float = 0.25, norm_groups: int = 32):
        """`norm_groups`: GroupNorm groups (the lab's 32); narrow configs keep several channels a
        group with fewer (16 channels: 4), since one channel a group loses colour."""
        super().__init__()
        enc_channels, dec_channels = list(enc_channels), list(dec_channels)
        if len(enc_channels) != 6 or len(dec_channels) != 5:
            raise ValueError("the lab VQGAN needs 6 encoder and 5 decoder channel entries")
        if img_resolution // 4 != latent_resolution:
            raise ValueError("the lab VQGAN down-samples by exactly 4 (e.g. 64 -> 16)")
        self.config = dict(image_channels=image_channels, enc_channels=enc_channels,
                           dec_channels=dec_channels, latent_dim=latent_dim,
                           img_resolution=img_resolution, latent_resolution=latent_resolution,
                           num_codebook_vectors=num_codebook_vectors, beta=beta,
                           norm_groups=norm_groups)
        self.latent_resolution = latent_resolution
        self.num_codebook_vectors = num_codebook_vectors
        self.encoder = Encoder(image_channels, enc_channels, latent_dim, norm_groups)
        self.decoder = Decoder(image_channels, dec_channels, latent_dim, latent_resolution, norm_groups)
        self.codebook = Codebook(num_codebook_vectors, latent_dim, beta)
        self.quant_conv = nn.Conv2d(latent_dim, latent_dim, 1)
        self.post_quant_conv = nn.Conv2d(latent_dim, latent_dim, 1)

    @property
    def unsaved_settings(self) -> dict[str, int]:
        """Settings that change the outputs but not the state dict; empty at the lab's values, so
        a lab-configured VQGAN's identity (`module_digest`) is its weights alone."""
        groups = self.config["norm_groups"]
        return {} if groups == 32 else {"norm_groups": groups}

    def latents(self, x: Tensor) -> Tensor:
        return self.quant_conv(self.encoder(x))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.codebook(self.latents(x))

    def decode(self, z_q: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_q, indices, q_loss = self.encode(x)
        return self.decode(z_q), indices, q_loss

    @torch.no_grad()
    def tokenize(self, x: Tensor) -> Tensor:
        """Images (normalised) -> token indices (B, latent_resolution**2)."""
        return self.codebook.nearest(self.latents(x))

    @torch.no_grad()
    def decode_tokens(self, indices: Tensor) -> Tensor:
        """Token indices (B, h*w) -> images in the normalised space."""
        r = self.latent_resolution
        return self.decode(self.codebook.lookup(indices, r, r))

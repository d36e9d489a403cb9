"""Counter-based uniform noise: u(seed, step, stream, position) from a hash, for a whole batch at once.

Decoding needs noise that depends only on the image's seed and where it is used, never on the batch
it is decoded in, the batch size or the device. A stateful generator per image gives that at the
cost of a Python loop (two generator calls per image per step: hundreds of tiny kernels on a GPU).
Here every value is a pure function of integers, computed with a few elementwise integer ops over
the (B, n) grid in one go, identically on every device.

The hash is Chris Wellons' `lowbias32` (two multiply-xorshift rounds, bias ~0.17 of the ideal)
applied in a chain seed -> step/stream -> position. 32-bit products are formed from 16-bit halves in
int64 so that nothing overflows (torch has no fast uint32 multiply on every backend).
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF
_M1, _M2 = 0x7FEB352D, 0x846CA68B  # lowbias32 multipliers
_SEED_HI_SALT, _STEP_SALT = 0x9E3779B9, 0x632BE5AB
_UNIFORM_BITS = 24  # float32 holds 24 bits exactly: u = (k + 0.5) / 2**24 lies strictly in (0, 1)


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2**32 for int64 x in [0, 2**32): split c so that every product is < 2**48."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def hash32(x: Tensor) -> Tensor:
    """lowbias32 of int64 x in [0, 2**32) (values outside are reduced mod 2**32 first)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, _M1)
    x = x ^ (x >> 15)
    x = _mul32(x, _M2)
    return x ^ (x >> 16)


def stream_keys(seeds: Tensor, step: int | Tensor, stream: int) -> Tensor:
    """int64 keys, one per (seed, step, stream): (B,) for an int step, (S, B) for S steps (S,).
    All 64 bits of each seed count."""
    seeds = seeds.long()
    lo, hi = seeds & _MASK32, (seeds >> 32) & _MASK32
    key = hash32(lo ^ hash32(hi ^ _SEED_HI_SALT))
    steps = torch.as_tensor(step, dtype=torch.long, device=seeds.device)
    salt = hash32((steps * 8 + stream) ^ _STEP_SALT)
    return hash32(key ^ salt.unsqueeze(-1)) if salt.dim() else hash32(key ^ salt)


def counters(n: int, device: torch.device | str = "cpu") -> Tensor:
    """The hashed positions 0..n-1, shared by every key (compute once, reuse every step)."""
    return hash32(torch.arange(n, device=device, dtype=torch.long))


def uniform_from_keys(keys: Tensor, hashed_counters: Tensor) -> Tensor:
    """(B, n) float32 uniforms in (0, 1) for keys (B,) at the positions `counters(n)`."""
    keys = keys.unsqueeze(1)
    bits = hash32(hash32(keys ^ hashed_counters.unsqueeze(0)) + keys) >> (32 - _UNIFORM_BITS)
    return (bits.float() + 0.5) / 2**_UNIFORM_BITS


def uniform(seeds: Tensor, step: int, stream: int, n: int) -> Tensor:
    """(B, n) float32 uniforms in (0, 1): entry [i, j] depends only on (seeds[i], step, stream, j)."""
    return uniform_from_keys(stream_keys(seeds, step, stream), counters(n, seeds.device))

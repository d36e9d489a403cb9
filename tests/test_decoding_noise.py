"""Counter-based decoding noise: the published hash, batch invariance, and uniform, independent draws."""

from __future__ import annotations

import math

import pytest
import torch

from maskgit.decoding.noise import hash32, stream_keys, uniform


def lowbias32_reference(x: int) -> int:
    """Chris Wellons' lowbias32, in plain Python integers."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_equals_the_reference_on_edge_and_random_words():
    words = [0, 1, 2, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
    words += torch.randint(0, 2**32, (2000,), generator=torch.Generator().manual_seed(3)).tolist()
    got = hash32(torch.tensor(words, dtype=torch.long)).tolist()
    assert got == [lowbias32_reference(w) for w in words]


def test_each_row_depends_only_on_its_seed_not_on_the_batch():
    seeds = torch.tensor([5, 2**40 + 5, -7, 0, 123456789012345])
    full = uniform(seeds, step=3, stream=1, n=300)
    for i in range(len(seeds)):
        assert torch.equal(uniform(seeds[i:i + 1], 3, 1, 300)[0], full[i])
    assert torch.equal(uniform(seeds.flip(0), 3, 1, 300), full.flip(0))
    assert torch.equal(uniform(seeds, 3, 1, 100), full[:, :100])  # a prefix of a longer draw


def test_seed_step_stream_and_high_seed_bits_all_change_the_draws():
    base = uniform(torch.tensor([11]), 0, 0, 256)
    for other in (uniform(torch.tensor([12]), 0, 0, 256), uniform(torch.tensor([11]), 1, 0, 256),
                  uniform(torch.tensor([11]), 0, 1, 256), uniform(torch.tensor([11 + 2**32]), 0, 0, 256)):
        assert (other != base).float().mean() > 0.99
    keys = stream_keys(torch.arange(20_000), 0, 0)
    assert keys.unique().numel() > 19_990  # 32-bit keys: a handful of birthday collisions at most


def test_draws_are_uniform_on_the_open_interval():
    u = uniform(torch.arange(64), 7, 0, 16_384).double()  # 1,048,576 draws
    assert u.min() > 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.002 and abs(u.var() - 1 / 12) < 0.001  # sd: 0.0003, 0.00008
    counts = torch.histc(u, bins=64, min=0, max=1)
    expected = u.numel() / 64
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 63 + 5 * math.sqrt(2 * 63)  # chi-square with 63 degrees of freedom, ~5 sd


@pytest.mark.parametrize("pair", ["neighbouring positions", "neighbouring seeds", "neighbouring steps"])
def test_neighbouring_draws_are_uncorrelated(pair):
    seeds = torch.arange(256)
    a = uniform(seeds, 4, 0, 4096)
    b = {"neighbouring positions": torch.roll(a, 1, dims=1),
         "neighbouring seeds": uniform(seeds + 1, 4, 0, 4096),
         "neighbouring steps": uniform(seeds, 5, 0, 4096)}[pair]
    corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]).double())[0, 1]
    assert abs(float(corr)) < 0.005  # 1,048,576 pairs: sd ~0.001


def test_keys_for_many_steps_at_once_equal_the_keys_of_each_step():
    seeds = torch.tensor([3, 2**50 + 1, -4])
    many = stream_keys(seeds, torch.arange(5), stream=0)
    assert many.shape == (5, 3)
    for step in range(5):
        assert torch.equal(many[step], stream_keys(seeds, step, 0))

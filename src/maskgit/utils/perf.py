"""What a benchmark reports besides seconds: FLOPs, achieved TFLOP/s, peak memory, grid extrapolation.

FLOPs are counted by torch's own `FlopCounterMode` (matmuls, attention, convolutions; forward and,
when the call runs backward, backward), so they follow the model instead of a hand formula. Peak
memory is CUDA's caching allocator on a GPU and the process's peak resident set on a CPU (which
cannot be reset: it covers the process so far).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

LAB_EPOCH_IMAGES = 12_000  # the lab's stage-2 training set, one epoch
TEST_IMAGES = 747          # the masked test set: images per sweep point


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` (include `.backward()` inside it to count the backward too)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def resolve_device(name: str) -> torch.device:
    """`auto`: cuda when a GPU is visible, else cpu; anything else as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float | str]:
    """{"kind": "cuda_allocated" | "cpu_peak_rss", "gib": ...}."""
    if device.type == "cuda":
        return {"kind": "cuda_allocated", "gib": torch.cuda.max_memory_allocated(device) / 2**30}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"kind": "cpu_peak_rss", "gib": rss / (2**30 if sys.platform == "darwin" else 2**20)}


def time_calls(fn: Callable[[], object], device: torch.device, *, calls: int, warmup: int) -> list[float]:
    """Wall seconds of each of `calls` timed calls after `warmup` untimed ones, device-synchronised."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(calls):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def tflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e12 if seconds > 0 else float("nan")


@dataclass(frozen=True)
class Grid:
    """A sweep of `len(mask_funcs)` x `total_iters` points, each decoding `images` test images."""

    mask_funcs: Sequence[str] = ("linear", "cosine", "square")
    total_iters: Sequence[int] = tuple(range(1, 29))
    images: int = TEST_IMAGES

    @property
    def points(self) -> int:
        return len(self.mask_funcs) * len(self.total_iters)

    @property
    def transformer_steps(self) -> int:
        """Decoding steps over the grid (a point with T iterations runs T batched forwards)."""
        return len(self.mask_funcs) * sum(self.total_iters)

    def seconds(self, step_s_per_image: float, point_s_per_image: float) -> float:
        """Extrapolated grid time: every step of every point, plus each point's once-per-image
        work (VQGAN decode, Inception features) for all its images."""
        return self.images * (self.transformer_steps * step_s_per_image + self.points * point_s_per_image)

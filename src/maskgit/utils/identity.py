"""What identifies a thing the project caches or stores: content digests, one key scheme, one cache.

- `file_sha256`: sha256 of a file's bytes (read every time; seals and genuineness checks use it).
- `file_identity`: the same hash, memoised per (resolved path, size, mtime_ns), so a file is read
  once per process unless it is rewritten.
- `files_digest`, `tensor_digest`, `module_digest`: content digests of a list of files (names and
  bytes), of an in-memory tensor and of a module's state (weights and `unsaved_settings`).
- `key`: THE key scheme, a truncated sha256 of canonical JSON; token-cache files, reference-feature
  files and sweep points are named by it.
- `BoundedCache`: the one in-process cache class, a small LRU with a maximum size.

No Lightning or Hydra here: data, metrics and sweeps all import this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
BLOCK = 1 << 20


class BoundedCache(Generic[K, V]):
    """A least-recently-used cache of at most `max_size` values; `get_or_make` fills it."""

    def __init__(self, max_size: int):
        if max_size < 1:
            raise ValueError(f"BoundedCache needs max_size >= 1, got {max_size}")
        self.max_size = max_size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.RLock()

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for `key`, or `make()` kept now (evicting the least recently used)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = make()
            self._items[key] = value
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


_FILE_HASHES: BoundedCache[tuple[str, int, int], str] = BoundedCache(1 << 16)


def file_identity(path: str | os.PathLike) -> str:
    """`file_sha256(path)`, hashed once per process per (resolved path, size, mtime_ns): a rewritten
    file is hashed again. Raises OSError (FileNotFoundError) for a missing file."""
    p = Path(path).resolve()
    st = p.stat()
    return _FILE_HASHES.get_or_make((str(p), st.st_size, st.st_mtime_ns), lambda: file_sha256(p))


def files_digest(files: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """sha256 over the names and contents (`file_identity`) of `files`; order matters. A name is the
    path relative to `root` when given, else the file name."""
    h = hashlib.sha256()
    for path in files:
        path = Path(path)
        name = path.relative_to(root) if root is not None else path.name
        h.update(f"{name}:{file_identity(path)}\n".encode())
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> np.ndarray:
    """The bytes of `t` (moved to the CPU, made contiguous) as a flat uint8 array."""
    t = t.detach().to("cpu").contiguous()
    return t.reshape(-1).view(torch.uint8).numpy() if t.numel() else np.zeros(0, np.uint8)


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's bytes (not its shape or dtype), e.g. of in-memory uint8 images."""
    return hashlib.sha256(_tensor_bytes(t)).hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes and bytes) and its `unsaved_settings`
    (what changes its outputs outside the state dict, e.g. the VQGAN's GroupNorm groups); memoised on
    the module, which must therefore not change afterwards (the frozen VQGAN). Checkpoints record it."""
    cached = getattr(module, "_maskgit_digest", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(_tensor_bytes(tensor))
    for setting, value in sorted(getattr(module, "unsaved_settings", {}).items()):
        h.update(f"{setting}={value}".encode())
    digest = h.hexdigest()
    module._maskgit_digest = digest
    return digest


def key(parts: Mapping[str, Any], length: int = 20) -> str:
    """The key of `parts`: sha256 of their canonical JSON (sorted keys, str() of what JSON lacks),
    as `length` hex digits."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:length]

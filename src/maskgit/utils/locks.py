"""A lock file beside a cache: processes (joblib, Ray or SLURM workers) that need the same cache
build it once, and none reads a half-built one.

`filelock` takes an OS lock (flock/fcntl) on `<file>.lock`: it is released when its holder exits,
also by kill -9, so a killed builder never blocks the next one. The `.lock` file itself stays (an
empty file; removing it while another process waits would let two builders in).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

T = TypeVar("T")


def lock_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


def build_once(path: str | os.PathLike, find: Callable[[], T | None], build: Callable[[], T]) -> T:
    """`find()` when the cache at `path` is there; else, holding its lock, `find()` again (another
    process may have built it while this one waited) and only then `build()` (which writes it)."""
    found = find()
    if found is not None:
        return found
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        found = find()
        return found if found is not None else build()

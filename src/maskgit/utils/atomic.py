"""Atomic file writes: a reader never sees a half-written result, cache or checkpoint."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# mkstemp makes its file readable by its owner only; a result, cache or checkpoint gets the mode a plain
# open() would give it (what the umask allows), so a shared cluster's group can read it
_UMASK = os.umask(0)
os.umask(_UMASK)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_partials(folder: Path, name: str = "*") -> list[Path]:
    """Delete the `.<name>.<pid>.<random>.tmp` files in `folder` whose writer was killed (its pid is
    gone): those of the file `name`, or of every file ("*")."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        parts = tmp.name[1:-len(".tmp")].rsplit(".", 2)  # name (may hold dots), pid, random
        if len(parts) == 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def remove_partial_checkpoints(log_dir: str | os.PathLike) -> list[Path]:
    """Partial checkpoints that killed training runs left in their run folders under `log_dir`."""
    log_dir = Path(log_dir)
    folders = [*log_dir.glob("*/runs/*/checkpoints"), *log_dir.glob("*/multiruns/*/*/checkpoints")]
    return [tmp for folder in folders for tmp in remove_stale_partials(folder)]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto `target` only on success.

    The temporary file is named `.<name>.<pid>.<random>.tmp`: a writer killed mid-write (no finally
    runs) leaves it behind, and the next write of the same target removes it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target.parent, target.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            tmp_path.chmod(0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def save_torch(obj: Any, target: str | os.PathLike) -> None:
    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def save_json(obj: Any, target: str | os.PathLike) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json_text(obj))

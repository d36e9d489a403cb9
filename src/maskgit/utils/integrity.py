"""Files the project writes and later trusts carry a seal: `<name>.seal` holds their size and sha256.

A cache (token caches, reference features, sweep points) whose seal is missing or does not match is
rebuilt; a checkpoint whose seal does not match is refused in one line naming it.

Replacing a sealed file (last.ckpt, every epoch) goes: write the new contents to a temporary file;
seal both the old and the new contents; rename the new file over the old; seal the new contents
only. A writer killed at any moment leaves a file that matches its seal, and bytes changed later
match neither.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from maskgit.utils.atomic import atomic_path, json_text, save_json
from maskgit.utils.identity import file_sha256

log = logging.getLogger(__name__)
SUFFIX = ".seal"
T = TypeVar("T")


def seal_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def _record(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def _records(path: Path) -> list[dict[str, Any]]:
    """The seal's records of `path` (an empty list when it has none); raises ValueError when the
    seal is unreadable."""
    try:
        found = json.loads(seal_path(path).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise ValueError(str(err)) from None
    records = found.get("records") if isinstance(found, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) and {"size", "sha256"} <= r.keys()
                                                for r in records):
        raise ValueError("no size and sha256 records")
    return records


def unseal(path: str | os.PathLike) -> None:
    seal_path(path).unlink(missing_ok=True)


def damage(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be trusted (missing, no seal, size or checksum differs), or None when whole."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        records = _records(path)
    except ValueError:
        return f"its {SUFFIX} record is unreadable"
    if not records:
        return f"no {SUFFIX} record of its size and checksum (its writer was interrupted)"
    size = path.stat().st_size
    if all(int(r["size"]) != size for r in records):
        return f"{size:,} bytes where {int(records[-1]['size']):,} were written"
    if file_sha256(path) not in {r["sha256"] for r in records}:
        return "its contents changed after it was written (sha256 differs)"
    return None


def write_sealed(target: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """`write(tmp)` a file and move it onto `target`, sealed at every moment (module docstring)."""
    target = Path(target)
    with atomic_path(target) as tmp:
        write(tmp)
        new = _record(tmp)
        try:
            old = _records(target) if target.exists() else []
        except ValueError:
            old = []
        save_json({"records": [*old, new]}, seal_path(target))
    save_json({"records": [new]}, seal_path(target))


def save_torch_sealed(obj: Any, target: str | os.PathLike) -> None:
    write_sealed(target, lambda tmp: torch.save(obj, tmp))


def save_json_sealed(obj: Any, target: str | os.PathLike) -> None:
    write_sealed(target, lambda tmp: tmp.write_text(json_text(obj)))


def load_cached(path: str | os.PathLike, read: Callable[[Path], T], what: str) -> T | None:
    """`read(path)` when `path` is whole; None (after a warning naming it, and removing it) when it
    is missing or damaged, so that the caller rebuilds it."""
    path = Path(path)
    if not path.exists():
        return None
    problem = damage(path)
    if problem is None:
        try:
            return read(path)
        except Exception as err:  # noqa: BLE001 - whole but unreadable: written by other code
            problem = f"unreadable ({type(err).__name__})"
    log.warning("rebuilding %s %s: %s", what, path, problem)
    path.unlink(missing_ok=True)
    unseal(path)
    return None


def torch_payload(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def json_payload(path: Path) -> Any:
    return json.loads(path.read_text())


"""Is a folder on storage that every node of a cluster sees? Judged by its file system's type.

Cluster launchers (SLURM, a Ray cluster) run points on other machines: the token and FID caches,
the point store and the sweep folder must be on a shared file system, or each node builds its own
caches, finished points are never found again and the table misses what other nodes wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

# File systems that live on one machine. Anything else (nfs, lustre, gpfs, beegfs, cephfs, ...) counts
# as shared: an unknown type is given the benefit of the doubt.
LOCAL_TYPES = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "overlay", "zfs", "f2fs", "vfat",
               "exfat", "devtmpfs", "squashfs", "apfs", "hfs"}


def mounts() -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount (Linux /proc/mounts; none elsewhere)."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            found.append((fields[1].replace("\\040", " "), fields[2]))
    return found


def file_system(path: str | os.PathLike) -> str | None:
    """The type of the file system holding `path` (its nearest existing parent), None when unknown."""
    p = Path(path).expanduser().resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    best, kind = "", None
    for point, fs in mounts():
        inside = str(p) == point or str(p).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fs
    return kind


def local_only(path: str | os.PathLike) -> str | None:
    """The local file system type `path` is on, or None when it may be shared."""
    kind = file_system(path)
    return kind if kind in LOCAL_TYPES else None

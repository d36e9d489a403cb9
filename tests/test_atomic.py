"""Atomic writes: a killed writer leaves no half-written target, and its partial file is cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from maskgit.utils.atomic import save_torch

KILLED_MID_WRITE = """
import os, signal, sys
from maskgit.utils.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)  # no finally, no rename: what a killed run leaves
"""


def test_a_killed_write_leaves_no_target_and_the_next_write_removes_its_partial(tmp_path):
    target = tmp_path / "last.ckpt"
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], capture_output=True)
    assert proc.returncode == -9
    (partial,) = tmp_path.glob(".last.ckpt.*.tmp")
    assert not target.exists() and partial.read_bytes() == b"half a checkpoint"

    mine = tmp_path / f".last.ckpt.{os.getpid()}.inflight.tmp"  # a live writer's file is left alone
    mine.write_bytes(b"")
    save_torch({"step": 3}, target)
    assert torch.load(target, weights_only=True) == {"step": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, mine.name])


def test_a_written_file_has_the_mode_a_plain_open_gives(tmp_path):
    """Not mkstemp's owner-only 0600: on a cluster the group reads the results and caches."""
    from maskgit.utils.atomic import save_json

    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    save_json({"fid": 1.0}, tmp_path / "metrics.json")
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    # and it follows the process's umask
    code = ("import os, sys; os.umask(0o027); from maskgit.utils.atomic import save_torch; "
            "save_torch({'step': 1}, sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "last.ckpt")], check=True)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == 0o640

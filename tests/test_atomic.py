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

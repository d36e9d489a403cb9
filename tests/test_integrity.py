"""Seals: every file the project writes and later trusts proves it is whole, at every moment of a write."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from maskgit.utils.integrity import (
    damage,
    json_payload,
    load_cached,
    save_json_sealed,
    save_torch_sealed,
    seal_path,
    torch_payload,
)


def corrupt(path: Path, how: str) -> None:
    """Damage `path` the way disks, copies and people do."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "zeroed":  # same size, 64 bytes in the middle zeroed: only the checksum sees it
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(min(64, len(data) - middle)) + data[middle + 64:])
    elif how == "unsealed":  # e.g. copied without its seal
        seal_path(path).unlink()
    elif how == "bad seal":
        seal_path(path).write_text("{")
    else:
        raise ValueError(how)


HOW = ["truncated", "empty", "zeroed", "unsealed", "bad seal"]
MESSAGE = {"truncated": "bytes where", "empty": "0 bytes where", "zeroed": "sha256 differs",
           "unsealed": "no .seal record", "bad seal": "unreadable"}


@pytest.mark.parametrize("how", HOW)
def test_each_damage_is_named(tmp_path, how):
    path = tmp_path / "tokens.pt"
    save_torch_sealed({"tokens": torch.arange(5000)}, path)
    assert damage(path) is None
    corrupt(path, how)
    assert MESSAGE[how] in damage(path)


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_cache_is_named_removed_and_not_used(tmp_path, how, caplog):
    path = tmp_path / "point.json"
    save_json_sealed({"metrics": {"fid": 12.5}}, path)
    assert load_cached(path, json_payload, "sweep point") == {"metrics": {"fid": 12.5}}
    corrupt(path, how)
    with caplog.at_level(logging.WARNING):
        assert load_cached(path, json_payload, "sweep point") is None
    assert f"rebuilding sweep point {path}: " in caplog.text and MESSAGE[how] in caplog.text
    assert not path.exists() and not seal_path(path).exists()


def test_a_sealed_file_that_cannot_be_read_is_rebuilt(tmp_path, caplog):
    path = tmp_path / "features.pt"
    save_json_sealed({"not": "torch"}, path)  # whole, but not what the reader expects
    with caplog.at_level(logging.WARNING):
        assert load_cached(path, torch_payload, "reference features") is None
    assert "unreadable" in caplog.text and not path.exists()


KILLER = """
import os, signal, sys, torch
from maskgit.utils import atomic, integrity
moment, target, value = sys.argv[1], sys.argv[2], int(sys.argv[3])
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if moment == "while writing":
    integrity.write_sealed(target, lambda tmp: (torch.save({"v": torch.full((4096,), value)}, tmp), die()))
real_save_json, real_replace = integrity.save_json, atomic.os.replace
def save_json(obj, path):
    real_save_json(obj, path)
    if moment == "after sealing both" and len(obj["records"]) == 2:
        die()
def replace(src, dst):
    real_replace(src, dst)
    if moment == "after the rename" and str(dst) == target:
        die()
integrity.save_json, atomic.os.replace = save_json, replace
integrity.save_torch_sealed({"v": torch.full((4096,), value)}, target)
"""


@pytest.mark.parametrize("moment", ["while writing", "after sealing both", "after the rename", "never"])
def test_a_writer_killed_at_any_moment_leaves_a_whole_sealed_file(tmp_path, moment):
    target = tmp_path / "last.ckpt"
    save_torch_sealed({"v": torch.full((4096,), 1)}, target)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLER), moment, str(target), "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == (0 if moment == "never" else -9), proc.stderr
    assert damage(target) is None  # the old contents or the new, and its seal says so
    value = int(torch.load(target, weights_only=True)["v"][0])
    assert value == (1 if moment in ("while writing", "after sealing both") else 2)
    records = json.loads(seal_path(target).read_text())["records"]
    assert len(records) == (2 if moment in ("after sealing both", "after the rename") else 1)
    save_torch_sealed({"v": torch.full((4096,), 3)}, target)  # the next write: one record, no partials
    assert len(json.loads(seal_path(target).read_text())["records"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.seal"]

"""maskgit-fid DIR_A DIR_B: two image folders scored as pytorch-fid / torch-fidelity do, offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from maskgit.metrics.fid import FIDSettings
from maskgit.metrics.folders import main as fid_cli
from maskgit.metrics.folders import score_folders


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "maskgit.metrics.folders", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def folders(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """12 masked test images and their 12 ground-truth images (train/val style: JPEG bytes in .png)."""
    base = tmp_path_factory.mktemp("folders")
    a, b = base / "masked", base / "gt"
    a.mkdir()
    b.mkdir()
    for i in range(12):
        shutil.copy(data_root / "masked_image" / f"image_{i:03d}.png", a)
        shutil.copy(data_root / "val" / f"image_{i:05d}.png", b)  # JPEG bytes under a .png name
    return a, b


def test_json_output_with_the_packaged_weights_and_no_path(folders, tmp_path):
    # No weights path anywhere: the packaged network is converted into a fresh cache and used.
    proc = run(str(folders[0]), str(folders[1]), "--features", "64", "--bootstrap", "20", "--json",
               env={"MASKGIT_INCEPTION_DIR": str(tmp_path / "inception")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert set(out) == {"fid", "kid_mean", "kid_std", "fid_ci95", "n_a", "n_b", "resize", "features",
                        "weights_sha256"}
    assert out["n_a"] == out["n_b"] == 12 and out["features"] == 64 and out["resize"] == "torch-fidelity"
    lo, hi = out["fid_ci95"]
    assert lo < out["fid"] < hi and out["kid_std"] > 0
    assert (tmp_path / "inception" / "pt_inception-2015-12-05-fid-helper.pth").is_file()


def test_same_folder_scores_zero_and_resizes_differ(folders, inception_weights, tmp_path):
    settings = {"weights_path": str(inception_weights), "features": 64, "bootstrap": 10, "kid_subsets": 10}
    same = score_folders(folders[0], folders[0], FIDSettings(**settings), cache_dir=tmp_path)
    assert same["fid"] == pytest.approx(0, abs=1e-6)
    tf = score_folders(*folders, FIDSettings(**settings), cache_dir=tmp_path)
    lab = score_folders(*folders, FIDSettings(**settings, resize="lab"), cache_dir=tmp_path)
    assert tf["fid"] > 1 and lab["fid"] != tf["fid"] and lab["fid"] == pytest.approx(tf["fid"], rel=0.1)
    assert len(list(tmp_path.glob("*.pt"))) == 4  # each folder's features once per resize, then reused
    assert score_folders(*folders, FIDSettings(**settings), cache_dir=tmp_path) == tf


def _bad(kind: str, tmp_path: Path, good: Path) -> tuple[Path, str]:
    folder = tmp_path / kind
    if kind == "missing":
        return folder, "no such folder"
    folder.mkdir()
    if kind == "empty":
        return folder, "at least 2 images"
    for f in list(good.iterdir())[:3]:
        shutil.copy(f, folder)
    if kind == "not-an-image":
        (folder / "notes.png").write_text("not an image")
        return folder, "not a readable image"
    Image.new("RGB", (32, 32)).save(folder / "small.png")
    return folder, "share one size"


def test_a_bad_folder_on_the_command_line_is_one_line_and_exit_2(folders, tmp_path, inception_weights):
    folder, expected = _bad("mixed-sizes", tmp_path, folders[0])
    proc = run(str(folder), str(folders[1]), "--features", "64", "--weights", str(inception_weights))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]


@pytest.mark.parametrize("kind", ["missing", "empty", "not-an-image", "mixed-sizes"])
def test_bad_folders_are_one_line_and_exit_2(folders, tmp_path, kind, inception_weights, capsys):
    """The console script's own main(), in this process (the subprocess above shows the real CLI)."""
    folder, expected = _bad(kind, tmp_path, folders[0])
    with pytest.raises(SystemExit) as exit_info:
        fid_cli([str(folder), str(folders[1]), "--features", "64", "--weights", str(inception_weights)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]

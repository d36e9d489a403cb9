"""The data set is checked up front: every problem is one DataError line naming the file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit.data.images import (
    LAB_TEST,
    LAB_TRAIN,
    Normalization,
    read_image,
    read_mask,
    write_png,
)
from maskgit.data.layout import SPLITS, scan_layout
from maskgit.data.synthetic import make_synthetic_dataset
from maskgit.errors import ConfigError, DataError

REAL_ROOT = os.environ.get("MASKGIT_DATA_ROOT")
needs_real = pytest.mark.skipif(
    not REAL_ROOT, reason="set MASKGIT_DATA_ROOT to the cat_face data set to run this test"
)


def raises_data_error(fn, *fragments) -> str:
    """Run `fn`, expect a one-line DataError containing every fragment; return the message."""
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert str(fragment) in message, f"{fragment!r} not in {message!r}"
    return message


@pytest.fixture(scope="session")
def small_set(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "small", 8, 4, 6, seed=1)


@pytest.fixture
def broken(small_set, tmp_path) -> Path:
    """A private copy of the small synthetic set, to break in one way per test."""
    return Path(shutil.copytree(small_set, tmp_path / "data"))


def scan(root: Path, **kwargs):
    return scan_layout(root, splits=kwargs.pop("splits", SPLITS), **kwargs)


# --- the real data set ------------------------------------------------------------------------


@needs_real
def test_real_layout_scans_with_lab_counts():
    layout = scan_layout(REAL_ROOT, splits=SPLITS)
    counts = [len(layout.train_files), len(layout.val_files), len(layout.test_files),
              len(layout.mask_files), len(layout.gt_files)]
    assert counts == [12000, 3000, 747, 747, 747]
    assert sum(layout.in_trainval) == 570 and len(layout.in_trainval) == 747
    assert layout.train_files[0].name == "image_00000.png"
    assert layout.train_files[-1].name == "image_11999.png"
    assert [p.name for p in layout.mask_files[:2]] == ["mask_000.png", "mask_001.png"]
    assert [p.name for p in layout.gt_files] == [p.name for p in layout.test_files]


@needs_real
def test_real_train_file_is_jpeg_named_png_and_decodes_to_64x64_rgb():
    path = Path(REAL_ROOT) / "train" / "image_00000.png"
    assert path.read_bytes()[:2] == b"\xff\xd8"  # JPEG magic under a .png name
    image = read_image(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)


@needs_real
def test_real_masked_image_is_gt_with_gray_holes():
    layout = scan_layout(REAL_ROOT, splits=SPLITS, check_images=False, limit={"test": 20})
    for masked, mask, gt in zip(layout.test_files, layout.mask_files, layout.gt_files, strict=True):
        m = read_mask(mask)
        expected = torch.where(m, read_image(gt), torch.tensor(128, dtype=torch.uint8))
        assert torch.equal(read_image(masked), expected)
        assert 0 < (~m).sum() < 64 * 64


@needs_real
def test_real_normalisation_round_trip_is_exact():
    images = torch.stack([read_image(Path(REAL_ROOT) / "val" / f"image_0000{i}.png")
                          for i in range(4)])
    x = LAB_TRAIN.normalize(images)
    assert x.dtype == torch.float32 and abs(x.mean().item()) < 1.5
    assert torch.equal(LAB_TRAIN.to_uint8(x), images)


# --- normalisation ----------------------------------------------------------------------------


def test_normalisation_uint8_and_float_agree_and_round_trip():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    for norm in (LAB_TRAIN, LAB_TEST):
        x = norm.normalize(images)
        assert torch.allclose(x, norm.normalize(images.float() / 255), atol=1e-6)
        assert torch.equal(norm.to_uint8(x), images)
        assert torch.equal(norm.to_uint8(x[0]), images[0])  # unbatched (3,H,W)
        assert torch.allclose(norm.denormalize(x), images.float() / 255, atol=1e-6)
    channel0 = LAB_TRAIN.normalize(torch.full((3, 1, 1), 0.4816))[0]
    assert torch.allclose(channel0, torch.zeros(1, 1), atol=1e-6)


def test_denormalize_clamps_to_unit_range():
    out = LAB_TRAIN.denormalize(torch.tensor([-100.0, 100.0]).view(1, 2, 1).expand(3, 2, 1))
    assert out.min() == 0.0 and out.max() == 1.0
    with pytest.raises(ValueError):
        Normalization((0.5,) * 3, (0.5,) * 3).normalize(torch.zeros(1, 8, 8))


def test_write_png_round_trips(tmp_path):
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    write_png(image, tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").format == "PNG"
    assert torch.equal(read_image(tmp_path / "x.png"), image)


# --- the synthetic data set -------------------------------------------------------------------


def test_synthetic_default_set_passes_scan(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn")
    layout = scan_layout(root, splits=SPLITS)
    assert [len(layout.train_files), len(layout.val_files), len(layout.test_files)] == [256, 64, 32]
    assert sum(layout.in_trainval) == 16
    assert layout.train_files[0].read_bytes()[:2] == b"\xff\xd8"
    assert Image.open(layout.mask_files[0]).mode == "L"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # no temp sibling left


def test_synthetic_masked_is_gt_times_mask_plus_128_holes(small_set):
    layout = scan_layout(small_set, splits=SPLITS)
    for masked, mask, gt in zip(layout.test_files, layout.mask_files, layout.gt_files, strict=True):
        m = np.asarray(Image.open(mask)).astype(np.int64)[..., None] // 255
        g = np.asarray(Image.open(gt)).astype(np.int64)
        assert np.array_equal(np.asarray(Image.open(masked)), g * m + 128 * (1 - m))
        assert 0.10 <= 1 - m.mean() <= 0.30


def test_synthetic_trainval_gt_occurs_in_train(small_set):
    layout = scan_layout(small_set, splits=SPLITS)
    train = {read_image(p).numpy().tobytes() for p in layout.train_files}
    for gt, seen in zip(layout.gt_files, layout.in_trainval, strict=True):
        assert (read_image(gt).numpy().tobytes() in train) == seen


def test_synthetic_is_deterministic_per_seed(tmp_path, small_set):
    again = make_synthetic_dataset(tmp_path / "again", 8, 4, 6, seed=1)
    other = make_synthetic_dataset(tmp_path / "other", 8, 4, 6, seed=2)
    files = sorted(p.relative_to(small_set) for p in small_set.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((small_set / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert (small_set / "train/image_00000.png").read_bytes() != (
        other / "train/image_00000.png").read_bytes()


def test_synthetic_is_skipped_when_complete_and_refuses_other_params(small_set):
    stamp = (small_set / "gt_provenance.tsv").stat().st_mtime_ns
    assert make_synthetic_dataset(small_set, 8, 4, 6, seed=1) == small_set
    assert (small_set / "gt_provenance.tsv").stat().st_mtime_ns == stamp
    raises_data_error(lambda: make_synthetic_dataset(small_set, 8, 4, 6, seed=3), small_set)


def test_synthetic_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    raises_data_error(lambda: make_synthetic_dataset(tmp_path / "mine", 2, 2, 2), "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# --- layout options ---------------------------------------------------------------------------


def test_limit_keeps_first_files_and_checks_only_those(broken):
    (broken / "train" / "image_00007.png").write_bytes(b"broken, but beyond the limit")
    layout = scan(broken, limit={"train": 3, "test": 2, "val": None})
    assert [p.name for p in layout.train_files] == [f"image_0000{i}.png" for i in range(3)]
    assert len(layout.val_files) == 4
    assert [len(layout.test_files), len(layout.mask_files), len(layout.gt_files)] == [2, 2, 2]
    assert len(layout.in_trainval) == 2
    with pytest.raises(ConfigError):
        scan(broken, limit={"tset": 2})


def test_only_the_splits_a_run_uses_are_checked(broken):
    for name in ("masked_image", "mask64", "gt", "gt_provenance.tsv"):
        shutil.rmtree(broken / name) if (broken / name).is_dir() else (broken / name).unlink()
    layout = scan(broken, splits=("train", "val"))  # training: the test split is not looked at
    assert layout.test_files == [] and layout.gt_files is None and layout.in_trainval is None
    raises_data_error(lambda: scan(broken), broken / "masked_image", "folder missing")


def test_evaluation_does_not_check_train_or_val(small_set, tmp_path):
    root = Path(shutil.copytree(small_set, tmp_path / "data"))
    shutil.rmtree(root / "train")
    (root / "val" / "image_00000.png").write_bytes(b"not an image")
    layout = scan(root, splits=("test",))
    assert layout.train_files == [] and layout.val_files == [] and len(layout.test_files) == 6
    raises_data_error(lambda: scan(root, splits=("val",)), root / "val" / "image_00000.png", "cannot read")


def test_hidden_files_are_ignored(broken):
    (broken / "train" / ".DS_Store").write_bytes(b"\0")
    assert len(scan(broken).train_files) == 8


# --- one broken input per test: the error names the file and the problem -----------------------


def test_missing_root(tmp_path):
    raises_data_error(lambda: scan(tmp_path / "nowhere"), tmp_path / "nowhere", "does not exist",
                      "MASKGIT_DATA_ROOT")


def test_missing_train_folder(broken):
    shutil.rmtree(broken / "train")
    raises_data_error(lambda: scan(broken), broken / "train", "folder missing")


def test_empty_val_folder(broken):
    for path in (broken / "val").iterdir():
        path.unlink()
    raises_data_error(lambda: scan(broken), broken / "val", "folder is empty")


def test_masked_image_and_mask_counts_differ(broken):
    (broken / "mask64" / "mask_003.png").unlink()
    raises_data_error(lambda: scan(broken), broken / "masked_image" / "image_003.png",
                      broken / "mask64" / "mask_003.png", "no partner",
                      "masked_image/ has 6 files, mask64/ has 5")


def test_extra_mask_without_image(broken):
    shutil.copy(broken / "mask64" / "mask_000.png", broken / "mask64" / "mask_099.png")
    raises_data_error(lambda: scan(broken), broken / "mask64" / "mask_099.png", "no partner",
                      broken / "masked_image" / "image_099.png")


def test_mask_name_without_partner(broken):
    os.rename(broken / "mask64" / "mask_005.png", broken / "mask64" / "mask_105.png")
    raises_data_error(lambda: scan(broken), broken / "masked_image" / "image_005.png",
                      broken / "mask64" / "mask_005.png", "no partner")


def test_test_image_badly_named(broken):
    os.rename(broken / "masked_image" / "image_002.png", broken / "masked_image" / "img2.png")
    raises_data_error(lambda: scan(broken), broken / "masked_image" / "img2.png", "image_NNN.png")


def test_gt_name_mismatch(broken):
    os.rename(broken / "gt" / "image_002.png", broken / "gt" / "image_102.png")
    raises_data_error(lambda: scan(broken), broken / "masked_image" / "image_002.png",
                      broken / "gt" / "image_002.png", "no partner")


def test_image_not_64x64(broken):
    path = broken / "train" / "image_00002.png"
    Image.new("RGB", (32, 48)).save(path, format="JPEG")
    raises_data_error(lambda: scan(broken), path, "must be 64x64, found 32x48")
    raises_data_error(lambda: read_image(path), path, "64x64")


def test_image_grayscale_not_rgb(broken):
    path = broken / "val" / "image_00001.png"
    Image.new("L", (64, 64)).save(path, format="JPEG")
    raises_data_error(lambda: scan(broken), path, "must be RGB, found mode L")
    raises_data_error(lambda: read_image(path), path, "RGB")


def test_gt_image_not_rgb(broken):
    path = broken / "gt" / "image_004.png"
    Image.new("RGBA", (64, 64)).save(path)
    raises_data_error(lambda: scan(broken), path, "must be RGB, found mode RGBA")


def test_corrupt_file(broken):
    path = broken / "train" / "image_00001.png"
    path.write_bytes(b"this is not an image")
    raises_data_error(lambda: scan(broken), path, "cannot read image")
    raises_data_error(lambda: read_image(path), path, "cannot read image")


def test_truncated_jpeg_fails_on_decode(broken):
    path = broken / "train" / "image_00001.png"
    path.write_bytes(path.read_bytes()[:300])
    raises_data_error(lambda: read_image(path), path, "cannot read image")


def test_mask_not_single_channel(broken):
    path = broken / "mask64" / "mask_001.png"
    Image.open(path).convert("RGB").save(path)
    raises_data_error(lambda: scan(broken), path, "single-channel", "RGB")
    raises_data_error(lambda: read_mask(path), path, "single-channel")


def test_mask_values_not_0_or_255(broken):
    path = broken / "mask64" / "mask_003.png"
    values = np.asarray(Image.open(path)).copy()
    values[0, 0] = 17
    Image.fromarray(values).save(path)
    raises_data_error(lambda: scan(broken), f"{path}: mask values must be 0 or 255, found 17")
    raises_data_error(lambda: read_mask(path), path, "found 17")


def test_mask_values_are_read_as_known(small_set):
    path = small_set / "mask64" / "mask_000.png"
    mask = read_mask(path)
    assert mask.dtype == torch.bool and mask.shape == (64, 64)
    assert torch.equal(mask, torch.from_numpy(np.asarray(Image.open(path)) == 255))


def test_provenance_bad_value(broken):
    tsv = broken / "gt_provenance.tsv"
    lines = tsv.read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\tmaybe"
    tsv.write_text("\n".join(lines) + "\n")
    raises_data_error(lambda: scan(broken), f"{tsv}:4", "in_trainval", "'maybe'")


def test_provenance_missing_row(broken):
    tsv = broken / "gt_provenance.tsv"
    tsv.write_text("\n".join(tsv.read_text().splitlines()[:-1]) + "\n")
    raises_data_error(lambda: scan(broken), tsv, "no row for test_index 5",
                      broken / "masked_image" / "image_005.png")

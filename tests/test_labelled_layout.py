"""Labelled image folders (ImageFolder, tiny-imagenet-200) and the sklearn digits exporter, on real files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit.data.digits import export_digits, main
from maskgit.data.labelled_layout import LAYOUTS, read_resized, scan_labelled
from maskgit.errors import ConfigError, DataError

CLASSES = ("cat", "dog", "fox")
TINY = {  # real tiny-imagenet wnids and their words.txt entries
    "n02124075": "Egyptian cat",
    "n01443537": "goldfish, Carassius auratus",
    "n04398044": "teapot",
}


def _image(path: Path, size: tuple[int, int] = (64, 64), mode: str = "RGB", value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = {"L": value, "RGB": (value, 50, 200), "RGBA": (value, 50, 200, 128)}[mode]
    Image.new(mode, size, fill).save(path)
    return path


def _class_folder(folder: Path, n: int = 7, start: int = 0) -> list[Path]:
    """`n` PNGs; the first is 32x32 grayscale, the second 80x60 RGBA, the rest 64x64 RGB."""
    kinds = [((32, 32), "L"), ((80, 60), "RGBA")] + [((64, 64), "RGB")] * n
    return [_image(folder / f"img_{start + i:02d}.png", *kinds[i], value=10 * i) for i in range(n)]


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    for name in CLASSES:
        _class_folder(root / name)
    return root


def _hash_order(files: list[Path], root: Path) -> list[Path]:
    return sorted(files, key=lambda p: hashlib.sha256(p.relative_to(root).as_posix().encode()).hexdigest())


def _by_class(files: list[Path], labels: list[int], ids: list[str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {i: [] for i in ids}
    for path, label in zip(files, labels, strict=True):
        out[ids[label]].append(path)
    return out


# -- ImageFolder -----------------------------------------------------------------------------------


def test_image_folder_classes_labels_and_split(image_folder: Path) -> None:
    layout = scan_labelled(image_folder)
    assert layout.kind == "image_folder" and "image_folder" in LAYOUTS
    assert layout.class_ids == list(CLASSES) and layout.class_names == list(CLASSES)
    assert layout.num_classes == 3
    train = _by_class(layout.train_files, layout.train_labels, layout.class_ids)
    val = _by_class(layout.val_files, layout.val_labels, layout.class_ids)
    for name in CLASSES:
        assert all(p.parent.name == name for p in train[name] + val[name])  # labels follow the folders
        assert (len(train[name]), len(val[name])) == (6, 1)  # round(0.1 * 7) = 1
        assert val[name] == _hash_order(sorted((image_folder / name).iterdir()), image_folder)[:1]
        assert sorted(train[name] + val[name]) == sorted((image_folder / name).iterdir())

    half = scan_labelled(image_folder, val_fraction=0.5)
    assert half.val_labels.count(0) == 4  # round(3.5) = 4 (banker's rounding)
    assert not scan_labelled(image_folder, val_fraction=0).val_files


def test_split_is_deterministic_and_stable_when_files_are_added(image_folder: Path) -> None:
    first = scan_labelled(image_folder, val_fraction=0.3, check_images=False)
    again = scan_labelled(image_folder, val_fraction=0.3, check_images=False)
    assert (first.train_files, first.val_files) == (again.train_files, again.val_files)

    old_cat = _hash_order(sorted((image_folder / "cat").iterdir()), image_folder)
    new = _class_folder(image_folder / "cat", n=1, start=50)[0]
    after = scan_labelled(image_folder, val_fraction=0.3, check_images=False)
    before_val = _by_class(first.val_files, first.val_labels, first.class_ids)
    after_val = _by_class(after.val_files, after.val_labels, after.class_ids)
    for name in ("dog", "fox"):
        assert after_val[name] == before_val[name]
    assert set(before_val["cat"]) == set(old_cat[:2])  # round(0.3 * 7) = 2
    # the new file takes its place in the old order; the old files keep theirs
    assert set(after_val["cat"]) == set(_hash_order(old_cat + [new], image_folder)[:2])  # round(0.3 * 8)
    old_in_val = [p for p in after_val["cat"] if p != new]
    assert set(old_in_val) == set(old_cat[: len(old_in_val)])


def test_explicit_train_and_val_folders(tmp_path: Path) -> None:
    root = tmp_path / "split"
    for name in CLASSES:
        _class_folder(root / "train" / name, n=4)
    _class_folder(root / "val" / "dog", n=3)
    _class_folder(root / "val" / "cat", n=2)
    layout = scan_labelled(root, val_fraction=0.5)
    assert layout.class_ids == list(CLASSES)
    assert len(layout.train_files) == 12 and all(p.parts[-3] == "train" for p in layout.train_files)
    assert layout.val_labels == [0, 0, 1, 1, 1]  # grouped by label; fox has no val images
    assert all(p.parts[-3] == "val" for p in layout.val_files)
    assert scan_labelled(root, splits=("val",)).train_files == []

    _class_folder(root / "val" / "wolf", n=1)
    with pytest.raises(DataError, match=r"wolf: class folder not in .*train"):
        scan_labelled(root)


def test_train_folder_alone_gives_classes_and_rule_split(tmp_path: Path) -> None:
    for name in CLASSES:
        _class_folder(tmp_path / "train" / name, n=4)
    layout = scan_labelled(tmp_path)
    assert layout.class_ids == list(CLASSES)
    assert len(layout.val_files) == 3 and len(layout.train_files) == 9


def test_read_resized_any_size_and_mode(image_folder: Path) -> None:
    grey, rgba, rgb = sorted((image_folder / "dog").iterdir())[:3]
    for path in (grey, rgba, rgb):
        image = read_resized(path)
        assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
    assert read_resized(rgba, size=32).shape == (3, 32, 32)
    assert read_resized(rgb)[:, 0, 0].tolist() == [20, 50, 200]  # 64x64 RGB: the pixels as written
    assert read_resized(grey)[:, 5, 5].tolist() == [0, 0, 0]


def test_limit_keeps_the_first_files_of_each_class(image_folder: Path) -> None:
    layout = scan_labelled(image_folder, limit={"train": 2, "val": None})
    assert layout.train_labels == [0, 0, 1, 1, 2, 2] and len(layout.val_files) == 3
    full = scan_labelled(image_folder)
    assert layout.train_files[:2] == full.train_files[:2]  # the first ones, by path
    for bad in ({"train": 0}, {"test": 3}, {"val": 1.5}, {"train": True}):
        with pytest.raises(ConfigError, match="data limit"):
            scan_labelled(image_folder, limit=bad)


def test_selection_by_id_orders_the_labels(image_folder: Path) -> None:
    layout = scan_labelled(image_folder, classes=["fox", "cat"])
    assert layout.class_ids == ["fox", "cat"] and layout.num_classes == 2
    files, labels = layout.train_files + layout.val_files, layout.train_labels + layout.val_labels
    assert all(p.parent.name == ["fox", "cat"][label] for p, label in zip(files, labels, strict=True))
    assert layout.train_labels[0] == 0 and layout.train_files[0].parent.name == "fox"
    with pytest.raises(ConfigError, match=r"unknown class 'zebra' \(valid ids: cat, dog, fox\)"):
        scan_labelled(image_folder, classes=["zebra"])
    with pytest.raises(ConfigError, match="given twice"):
        scan_labelled(image_folder, classes=["cat", "dog", "cat"])
    _class_folder(image_folder / "Cat", n=2)
    with pytest.raises(ConfigError, match="ambiguous.*Cat.*cat"):
        scan_labelled(image_folder, classes=["CAT"])
    assert scan_labelled(image_folder, classes=["Cat"]).class_ids == ["Cat"]  # an id wins
    with pytest.raises(ConfigError, match="data.layout"):
        scan_labelled(image_folder, layout="imagenet")
    with pytest.raises(ConfigError, match="data.val_fraction"):
        scan_labelled(image_folder, val_fraction=1.0)


# -- tiny-imagenet-200 -----------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """tiny-imagenet-200's layout: 3 classes, 3 train images each, 2 val images each."""
    root = tmp_path / "tiny-imagenet-200"
    root.mkdir()
    words = {**TINY, "n00001740": "entity"}  # words.txt lists far more than the 200 classes
    (root / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in words.items()))
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in TINY))
    for wnid in TINY:
        for i in range(3):
            _image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", value=20 * i)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i, wnid in enumerate(list(TINY) * 2):
        _image(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63\n")
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    return root


def _annotations(root: Path) -> dict[str, str]:
    lines = (root / "val" / "val_annotations.txt").read_text().splitlines()
    return {line.split("\t")[0]: line.split("\t")[1] for line in lines}


def test_tiny_imagenet_is_detected_and_labelled_from_annotations(tiny: Path) -> None:
    layout = scan_labelled(tiny)
    assert layout.kind == "tiny_imagenet"
    assert layout.class_ids == sorted(TINY)
    assert layout.class_names == ["goldfish, Carassius auratus", "Egyptian cat", "teapot"]
    assert layout.train_labels == [0] * 3 + [1] * 3 + [2] * 3
    assert all(p.parts[-3] == layout.class_ids[label] for p, label in
               zip(layout.train_files, layout.train_labels, strict=True))
    truth = _annotations(tiny)
    assert len(layout.val_files) == 6
    assert [layout.class_ids[i] for i in layout.val_labels] == [truth[p.name] for p in layout.val_files]
    with pytest.raises(DataError, match=r"val/images: class folder not in .*data\.layout"):
        scan_labelled(tiny, layout="image_folder")  # forced: val/images/ is no class of train/


def test_tiny_imagenet_selection_by_wnid_and_name(tiny: Path) -> None:
    layout = scan_labelled(tiny, classes=["goldfish", "Egyptian cat"])
    assert layout.class_ids == ["n01443537", "n02124075"]
    assert layout.class_names == ["goldfish, Carassius auratus", "Egyptian cat"]
    truth = _annotations(tiny)
    assert len(layout.val_files) == 4 and "n04398044" not in {truth[p.name] for p in layout.val_files}
    assert [truth[p.name] for p in layout.val_files] == [layout.class_ids[i] for i in layout.val_labels]
    same = scan_labelled(tiny, classes=["n01443537", "EGYPTIAN CAT"], check_images=False)
    assert same.val_files == layout.val_files and same.val_labels == layout.val_labels
    assert scan_labelled(tiny, classes=["carassius auratus"], check_images=False).class_ids == ["n01443537"]
    with pytest.raises(ConfigError, match=r"'zebra'.*n01443537.*names from words\.txt"):
        scan_labelled(tiny, classes=["goldfish", "zebra"])
    with pytest.raises(ConfigError, match="given twice"):
        scan_labelled(tiny, classes=["goldfish", "n01443537"])


def test_tiny_imagenet_bad_annotations(tiny: Path) -> None:
    annotations = tiny / "val" / "val_annotations.txt"
    (tiny / "val" / "images" / "val_4.JPEG").unlink()  # line 5
    with pytest.raises(DataError, match=r"val_annotations\.txt:5: image .*val_4\.JPEG is missing"):
        scan_labelled(tiny)
    assert len(scan_labelled(tiny, classes=["teapot"]).val_files) == 2  # val_4 is a goldfish: dropped
    assert scan_labelled(tiny, splits=("train",)).val_files == []  # the val split is not read

    text = annotations.read_text()
    annotations.write_text(text + "val_9.JPEG\n")
    with pytest.raises(DataError, match=r"val_annotations\.txt:7: expected file<TAB>wnid"):
        scan_labelled(tiny, classes=["teapot"])
    annotations.write_text(text.replace("val_0.JPEG\tn02124075", "val_0.JPEG\tn09999999"))
    with pytest.raises(DataError, match=r"val_annotations\.txt:1: unknown wnid 'n09999999'"):
        scan_labelled(tiny, classes=["teapot"])


# -- bad inputs ------------------------------------------------------------------------------------


def test_missing_root_and_empty_class(tmp_path: Path, image_folder: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        scan_labelled(missing)
    assert str(err.value).startswith(f"{missing}: ") and "data.root" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no class folders") as err:
        scan_labelled(empty)
    assert str(err.value).startswith(str(empty))
    (image_folder / "owl").mkdir()
    (image_folder / "owl" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="holds no image") as err:
        scan_labelled(image_folder)
    assert str(err.value).startswith(str(image_folder / "owl"))
    assert scan_labelled(image_folder, classes=["cat"]).num_classes == 1  # only selected classes count


def test_corrupt_image(image_folder: Path) -> None:
    bad = image_folder / "dog" / "img_03.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="cannot read image") as err:
        scan_labelled(image_folder)
    assert str(err.value).startswith(f"{bad}: ") and "\n" not in str(err.value)
    scan_labelled(image_folder, check_images=False)
    with pytest.raises(DataError) as err:
        read_resized(bad)
    assert str(err.value).startswith(f"{bad}: ")


# -- the sklearn digits ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "digits"
    counts = export_digits(out)
    assert sum(counts.values()) == 1797 and len(counts) == 10
    return out


def test_export_digits_files_labels_and_pixels(digits: Path) -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    source = sklearn_datasets.load_digits()
    assert sorted(p.name for p in digits.iterdir()) == [str(d) for d in range(10)]
    files = sorted(digits.glob("*/*.png"))
    assert len(files) == 1797 and not digits.with_name("digits.partial").exists()
    for index in (0, 1, 100, 1796):
        path = digits / str(source.target[index]) / f"digit_{index:04d}.png"
        with Image.open(path) as im:
            assert (im.mode, im.size) == ("RGB", (64, 64))
            array = np.asarray(im)
        expected = 255 - np.round(source.images[index] * 255 / 16)
        assert np.array_equal(array[::8, ::8, 0], expected)  # one 8-px square per source pixel
        assert np.array_equal(array[..., 0], np.kron(expected, np.ones((8, 8))))
        assert (array[..., 0] == array[..., 2]).all()
    with Image.open(digits / str(source.target[0]) / "digit_0000.png") as im:
        assert (np.asarray(im)[:8, :8] == 255).all()  # images[0][0, 0] == 0: white paper


def test_export_digits_cli_refuses_and_replaces(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "digits"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(SystemExit) as exit_:
        main([str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "--force" in err
    assert (out / "mine.txt").exists()
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "other"), "--size", "60"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "multiple of 8" in err and err.count("\n") == 1
    assert not (tmp_path / "other").exists()

    assert main([str(out), "--size", "16", "--force"]) == 0
    assert capsys.readouterr().out == f"wrote 1797 digits (10 classes, 16x16) to {out}\n"
    assert not (out / "mine.txt").exists() and len(list(out.glob("*/*.png"))) == 1797
    with Image.open(next(out.glob("3/*.png"))) as im:
        assert im.size == (16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]  # no .partial / .replaced left


def test_scan_exported_digits(digits: Path) -> None:
    layout = scan_labelled(digits)
    assert layout.kind == "image_folder" and layout.class_ids == [str(d) for d in range(10)]
    assert 170 <= len(layout.val_files) <= 190 and len(layout.train_files) + len(layout.val_files) == 1797
    assert all(layout.val_labels.count(c) >= 1 for c in range(10))

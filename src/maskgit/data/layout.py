"""The on-disk layout of the cat-face data set, checked up front so a run fails before any work.

    root/train/image_00000.png ...   JPEG bytes under a .png name, 64x64 RGB
    root/val/image_00000.png ...     same
    root/masked_image/image_000.png  PNG RGB, holes are (128,128,128)
    root/mask64/mask_000.png         PNG mode L, 255 = known, 0 = hole
    root/gt/image_000.png            optional: the true test images
    root/gt_provenance.tsv           optional: column in_trainval (True/False) per test_index
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maskgit.data.images import open_checked, read_mask
from maskgit.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
_TEST_NAME = re.compile(r"^image_(\d+)\.png$")
_MASK_NAME = re.compile(r"^mask_(\d+)\.png$")


@dataclass
class LabLayout:
    """Sorted file lists of one data set in the lab's layout; test lists are aligned index by index."""

    root: Path
    train_files: list[Path] = field(default_factory=list)  # empty unless "train" was scanned
    val_files: list[Path] = field(default_factory=list)
    test_files: list[Path] = field(default_factory=list)  # masked_image/
    mask_files: list[Path] = field(default_factory=list)  # mask64/, aligned with test_files
    gt_files: list[Path] | None = None  # None when gt/ is absent
    in_trainval: list[bool] | None = None  # None when gt_provenance.tsv is absent


def _list_folder(folder: Path, expected: str) -> list[Path]:
    """Non-hidden files of `folder` sorted by name; the folder must exist and hold some."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder missing (expected {expected})")
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())
    if not names:
        raise DataError(f"{folder}: folder is empty (expected {expected})")
    return [folder / name for name in names]


def _pair(
    files: list[Path],
    others: list[Path],
    partner_name: Callable[[str], str | None],
    pattern: str,
) -> list[Path]:
    """For each of `files` its partner in `others` (same folder as others); first miss raises."""
    other_dir = others[0].parent
    by_name = {p.name: p for p in others}
    here = files[0].parent.name
    counts = f"({here}/ has {len(files)} files, {other_dir.name}/ has {len(others)})"
    paired = []
    for path in files:
        name = partner_name(path.name)
        if name is None:
            raise DataError(f"{path}: file name must look like {pattern} {counts}")
        if name not in by_name:
            raise DataError(f"{path}: no partner {other_dir / name} {counts}")
        paired.append(by_name[name])
    return paired


def _check_pairs(
    files: list[Path], others: list[Path], to_other: Callable, to_file: Callable, patterns: tuple
) -> list[Path]:
    """Check both directions of a one-to-one name correspondence; return others aligned to files."""
    paired = _pair(files, others, to_other, patterns[0])
    if len(others) != len(files):
        _pair(others, files, to_file, patterns[1])  # raises on the first extra file of `others`
    return paired


def _image_to_mask(name: str) -> str | None:
    m = _TEST_NAME.match(name)
    return f"mask_{m.group(1)}.png" if m else None


def _mask_to_image(name: str) -> str | None:
    m = _MASK_NAME.match(name)
    return f"image_{m.group(1)}.png" if m else None


def _same_name(name: str) -> str:
    return name


def _read_in_trainval(tsv: Path, test_files: list[Path]) -> list[bool]:
    """Column in_trainval of gt_provenance.tsv, one bool per test file (matched by test_index)."""
    try:
        lines = tsv.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{tsv}: cannot read ({' '.join(str(err).split())})") from None
    header = lines[0].split("\t") if lines else []
    for column in ("test_index", "in_trainval"):
        if column not in header:
            raise DataError(f"{tsv}: no column {column} in the header line")
    i_index, i_value = header.index("test_index"), header.index("in_trainval")
    values: dict[int, bool] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataError(f"{tsv}:{lineno}: expected {len(header)} columns, found {len(cells)}")
        index, value = cells[i_index].strip(), cells[i_value].strip()
        if not index.isdigit():
            raise DataError(f"{tsv}:{lineno}: test_index must be an integer, found {index!r}")
        if value not in ("True", "False"):
            raise DataError(f"{tsv}:{lineno}: in_trainval must be True or False, found {value!r}")
        if int(index) in values:
            raise DataError(f"{tsv}:{lineno}: test_index {index} appears twice")
        values[int(index)] = value == "True"
    result = []
    for path in test_files:
        index = int(_TEST_NAME.match(path.name).group(1))  # names were checked by _pair
        if index not in values:
            raise DataError(f"{tsv}: no row for test_index {index} ({path})")
        result.append(values[index])
    return result


def check_limit(limit: Mapping | None, splits: tuple[str, ...] = SPLITS) -> dict[str, int]:
    """`data.limit` as {split: n} for the splits with a limit; one-line ConfigError otherwise."""
    if not limit:
        return {}
    out = {}
    for split, n in limit.items():
        if split not in splits:
            raise ConfigError(f"data limit: unknown split {split!r} (expected one of {splits})")
        if n is None:
            continue
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"data limit for {split} must be a positive integer, found {n!r}")
        out[split] = n
    return out


def scan_layout(
    root: str | os.PathLike,
    *,
    splits: Collection[str] = ("train", "val"),
    check_images: bool = True,
    limit: Mapping[str, int | None] | None = None,
) -> LabLayout:
    """Check the `splits` a run uses under `root` and return their sorted file lists; raise
    DataError on a problem. Splits not asked for are neither read nor checked (their lists are empty).

    "test" is masked_image/ + mask64/ [+ gt/, gt_provenance.tsv]. `limit` keeps the first n files
    of a split. With `check_images`, every kept file's header is checked (64x64, RGB images, mode-L
    masks) and every kept mask is decoded to check its values.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be some of {SPLITS}, got {list(splits)}")
    limits = check_limit(limit)
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data root {root} does not exist (set data.root or MASKGIT_DATA_ROOT)")
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder (set data.root or MASKGIT_DATA_ROOT)")

    images = "64x64 RGB images image_*.png"
    layout = LabLayout(root=root)
    for split in ("train", "val"):
        if split in splits:
            files = _list_folder(root / split, images)[: limits.get(split)]
            setattr(layout, f"{split}_files", files)
    if "test" in splits:
        _scan_test(layout, limits.get("test"))

    if check_images:
        rgb = layout.train_files + layout.val_files + layout.test_files + (layout.gt_files or [])
        for path in rgb:
            with open_checked(path, mode="RGB", what="image"):
                pass
        for path in layout.mask_files:
            read_mask(path)
    return layout


def _scan_test(layout: LabLayout, n_test: int | None) -> None:
    """The test lists of `layout` (aligned index by index), the first `n_test` of them."""
    root = layout.root
    test = _list_folder(root / "masked_image", "masked test images image_NNN.png")
    masks = _list_folder(root / "mask64", "masks mask_NNN.png")
    patterns = ("image_NNN.png", "mask_NNN.png")
    layout.test_files = test[:n_test]
    layout.mask_files = _check_pairs(test, masks, _image_to_mask, _mask_to_image, patterns)[:n_test]
    if (root / "gt").is_dir():
        gt = _list_folder(root / "gt", "ground-truth images named like masked_image/")
        names = ("image_NNN.png", "image_NNN.png")
        layout.gt_files = _check_pairs(test, gt, _same_name, _same_name, names)[:n_test]
    if (root / "gt_provenance.tsv").is_file():
        layout.in_trainval = _read_in_trainval(root / "gt_provenance.tsv", test)[:n_test]

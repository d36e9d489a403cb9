"""Labelled image folders, scanned and checked up front so a run fails before any work.

Two layouts (`layout="auto"` tells them apart):

    image_folder:   root/<class>/<image>                   one folder per class, any depth below it
                    root/train/<class>/.., root/val/<class>/..  explicit splits (optional; train/ alone:
                                                           its classes, val by the split rule)
    tiny_imagenet:  root/words.txt, root/wnids.txt          optional: wnid<TAB>names / one wnid a line
                    root/train/<wnid>/images/*.JPEG
                    root/val/images/*.JPEG
                    root/val/val_annotations.txt            file<TAB>wnid<TAB>x<TAB>y<TAB>w<TAB>h

Images may have any size and mode: `read_resized` converts them to RGB of the size a run uses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from maskgit.data.layout import check_limit
from maskgit.errors import ConfigError, DataError

LAYOUTS = ("auto", "image_folder", "tiny_imagenet")
SPLITS = ("train", "val")
_HINT = "set data.root or data.layout"


@dataclass
class LabelledLayout:
    """Kept files and their labels (indices into `class_ids`), grouped by label, sorted by path within."""

    root: Path
    kind: str  # "image_folder" or "tiny_imagenet" ("auto" is resolved)
    class_ids: list[str]  # folder names or wnids, in label order
    class_names: list[str]  # words.txt's entry for a wnid; the folder name otherwise
    train_files: list[Path] = field(default_factory=list)  # empty unless "train" was scanned
    train_labels: list[int] = field(default_factory=list)
    val_files: list[Path] = field(default_factory=list)
    val_labels: list[int] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    # What the inpainting task reads of a test split (the cat faces' `LabLayout`): a labelled
    # folder's test images are its val images, masked by a generator, with no provenance file.
    @property
    def gt_files(self) -> list[Path]:
        return self.val_files

    @property
    def test_files(self) -> list[Path]:
        return []

    @property
    def mask_files(self) -> list[Path]:
        return []

    @property
    def in_trainval(self) -> None:
        return None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


# -- class folders and selection -----------------------------------------------------------------


def _class_folders(folder: Path) -> list[str]:
    """Sorted non-hidden subfolder names of `folder` (torchvision's find_classes, hidden ones dropped)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder missing (expected one subfolder per class; {_HINT})")
    try:
        names, _ = find_classes(folder)
    except FileNotFoundError:
        names = []
    names = [n for n in names if not n.startswith(".")]
    if not names:
        raise DataError(f"{folder}: no class folders (expected one subfolder per class; {_HINT})")
    return names


def _synonyms(name: str) -> list[str]:
    return [name.lower()] + [s.strip().lower() for s in name.split(",") if s.strip()]


def _valid_ids_hint(ids: Sequence[str], kind: str) -> str:
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    names = "; or names from words.txt" if kind == "tiny_imagenet" else ""
    return f"(valid ids: {shown}{names})"


def _resolve_one(entry: str, ids: Sequence[str], names: Mapping[str, str], kind: str) -> str:
    """The class id `entry` stands for: an id, else a case-insensitive name or synonym of one class."""
    if entry in names:
        return entry
    wanted = entry.strip().lower()
    matches = [i for i in ids if wanted in _synonyms(names[i]) or wanted == i.lower()]
    if not matches:
        raise ConfigError(f"data.classes: unknown class {entry!r} {_valid_ids_hint(ids, kind)}")
    if len(matches) > 1:
        found = ", ".join(f"{i} ({names[i]})" for i in matches)
        raise ConfigError(f"data.classes: {entry!r} is ambiguous, it names {found}; give the id instead")
    return matches[0]


def _select(
    classes: Sequence[str] | str | None, ids: list[str], names: Mapping[str, str], kind: str
) -> list[str]:
    """The selected class ids in label order: all (sorted) for None, else in the order of `classes`."""
    if classes is None:
        return list(ids)
    entries = [classes] if isinstance(classes, str) else [str(c) for c in classes]
    if not entries:
        raise ConfigError("data.classes is empty (give class ids or names, or null for all classes)")
    chosen: list[str] = []
    for entry in entries:
        class_id = _resolve_one(entry, ids, names, kind)
        if class_id in chosen:
            raise ConfigError(f"data.classes: class {class_id} is given twice (entry {entry!r})")
        chosen.append(class_id)
    return chosen


# -- files -----------------------------------------------------------------------------------------


def _class_files(folder: Path, labels: Mapping[str, int], *, require_all: bool) -> dict[int, list[Path]]:
    """Image files (by extension, recursively, sorted) of each class folder of `folder`, by label."""
    present = {c: i for c, i in labels.items() if (folder / c).is_dir()}
    by_label: dict[int, list[Path]] = {i: [] for i in labels.values()}
    if present:
        for path, label in make_dataset(folder, present, extensions=IMG_EXTENSIONS, allow_empty=True):
            if not os.path.basename(path).startswith("."):  # e.g. macOS ._name.jpg
                by_label[label].append(Path(path))
    for class_id, label in labels.items():
        if class_id not in present:
            if require_all:
                raise DataError(f"{folder / class_id}: class folder missing ({_HINT})")
            continue
        if not by_label[label]:
            exts = " ".join(IMG_EXTENSIONS[:4])
            raise DataError(f"{folder / class_id}: class folder holds no image (extensions {exts} ...)")
    return by_label


def _hash_key(path: Path, root: Path) -> str:
    return hashlib.sha256(path.relative_to(root).as_posix().encode()).hexdigest()


def _split_rule(files: list[Path], root: Path, val_fraction: float) -> tuple[list[Path], list[Path]]:
    """(train, val) of one class: the val files are the first round(val_fraction * n) by sha256 of the
    path relative to root, so the split is the same on every machine and does not move when files are
    added. At least one val file when n >= 2 and val_fraction > 0; at least one train file."""
    n = len(files)
    k = round(val_fraction * n)
    if val_fraction > 0 and n >= 2:
        k = max(k, 1)
    k = min(k, n - 1)
    if k <= 0:
        return list(files), []
    val = set(sorted(files, key=lambda p: (_hash_key(p, root), p))[:k])
    return [p for p in files if p not in val], [p for p in files if p in val]


def _is_split_folder(folder: Path) -> bool:
    """True when `folder` holds class folders (some subfolder, no image directly): an explicit split."""
    if not folder.is_dir():
        return False
    with os.scandir(folder) as entries:
        visible = [e for e in entries if not e.name.startswith(".")]
    has_dirs = any(e.is_dir() for e in visible)
    has_images = any(e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS) for e in visible)
    return has_dirs and not has_images


# -- the two layouts -------------------------------------------------------------------------------


def _scan_image_folder(layout: LabelledLayout, classes, val_fraction: float, splits) -> dict:
    """Files by split and label of an ImageFolder tree; fills the class lists of `layout`."""
    root = layout.root
    train_only = _is_split_folder(root / "train") and not (root / "val").exists()
    explicit = _is_split_folder(root / "train") and _is_split_folder(root / "val")
    class_root = root / "train" if explicit or train_only else root
    ids = _class_folders(class_root)
    layout.class_ids = _select(classes, ids, {i: i for i in ids}, "image_folder")
    layout.class_names = list(layout.class_ids)
    labels = {c: i for i, c in enumerate(layout.class_ids)}
    if explicit:
        return _explicit_splits(root, ids, labels, splits)
    by_label = _class_files(class_root, labels, require_all=True)
    out: dict[str, dict[int, list[Path]]] = {"train": {}, "val": {}}
    for label, files in by_label.items():
        out["train"][label], out["val"][label] = _split_rule(files, root, val_fraction)
    return out


def _explicit_splits(root: Path, train_ids: list[str], labels: Mapping[str, int], splits) -> dict:
    val_ids = _class_folders(root / "val")
    extra = [c for c in val_ids if c not in train_ids]
    if extra:
        raise DataError(f"{root / 'val' / extra[0]}: class folder not in {root / 'train'} "
                        f"(the val classes must be among the train classes; {_HINT})")
    out: dict[str, dict[int, list[Path]]] = {"train": {}, "val": {}}
    if "train" in splits:
        out["train"] = _class_files(root / "train", labels, require_all=True)
    if "val" in splits:
        out["val"] = _class_files(root / "val", labels, require_all=False)
    return out


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({_one_line(err)})") from None


def _read_words(path: Path) -> dict[str, str]:
    """wnid -> name of words.txt (empty when the file is absent)."""
    if not path.is_file():
        return {}
    words = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        wnid, tab, name = line.partition("\t")
        if not tab:
            raise DataError(f"{path}:{lineno}: expected wnid<TAB>name, found {line[:60]!r}")
        words[wnid.strip()] = name.strip()
    return words


def _read_annotations(path: Path, known: Collection[str], labels: Mapping[str, int]) -> dict[int, list[Path]]:
    """Val files by label from val_annotations.txt; lines of unselected classes are dropped."""
    images = path.parent / "images"
    by_label: dict[int, list[Path]] = {i: [] for i in labels.values()}
    seen: set[str] = set()
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        where = f"{path}:{lineno}"
        if len(cells) < 2:
            raise DataError(f"{where}: expected file<TAB>wnid<TAB>x<TAB>y<TAB>w<TAB>h, found {line[:60]!r}")
        name, wnid = cells[0].strip(), cells[1].strip()
        if wnid not in known:
            raise DataError(f"{where}: unknown wnid {wnid!r} (no folder {path.parents[1] / 'train' / wnid})")
        if name in seen:
            raise DataError(f"{where}: {name} is listed twice")
        seen.add(name)
        if wnid not in labels:
            continue
        file = images / name
        if not file.is_file():
            raise DataError(f"{where}: image {file} is missing")
        by_label[labels[wnid]].append(file)
    return {label: sorted(files) for label, files in by_label.items()}


def _scan_tiny_imagenet(layout: LabelledLayout, classes, splits) -> dict:
    """Files by split and label of a tiny-imagenet-200 tree; fills the class lists of `layout`."""
    root = layout.root
    ids = _class_folders(root / "train")
    words = _read_words(root / "words.txt")
    names = {i: words.get(i, i) for i in ids}
    layout.class_ids = _select(classes, ids, names, "tiny_imagenet")
    layout.class_names = [names[i] for i in layout.class_ids]
    labels = {c: i for i, c in enumerate(layout.class_ids)}
    out: dict[str, dict[int, list[Path]]] = {"train": {}, "val": {}}
    if "train" in splits:
        out["train"] = _class_files(root / "train", labels, require_all=True)
    if "val" in splits:
        annotations = root / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise DataError(f"{annotations}: file missing (the val labels of tiny-imagenet; {_HINT})")
        wnids = root / "wnids.txt"
        listed = [w.strip() for w in _read_lines(wnids) if w.strip()] if wnids.is_file() else []
        out["val"] = _read_annotations(annotations, set(ids) | set(listed), labels)
    return out


def _detect(root: Path) -> str:
    """tiny_imagenet when train/*/images/ folders and val/val_annotations.txt exist, else image_folder."""
    has_images = any(p.is_dir() for p in root.glob("train/*/images"))
    tiny = has_images and (root / "val" / "val_annotations.txt").is_file()
    return "tiny_imagenet" if tiny else "image_folder"


# -- checks and the public entry points ------------------------------------------------------------


def _check_settings(layout: str, val_fraction: float, splits: Collection[str]) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"data.layout must be one of {', '.join(LAYOUTS)}, found {layout!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or \
            not 0 <= val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be a number in [0, 1), found {val_fraction!r}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be some of {SPLITS}, got {list(splits)}")


def check_image(path: Path) -> None:
    """Raise DataError unless PIL can identify and verify `path` (header and structure, no decode)."""
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, struct.error, ...)
        raise DataError(f"{path}: cannot read image ({_one_line(err)})") from None


def scan_labelled(
    root: str | os.PathLike,
    *,
    layout: str = "auto",
    classes: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    limit: Mapping[str, int | None] | None = None,
    check_images: bool = True,
    splits: Collection[str] = ("train", "val"),
) -> LabelledLayout:
    """Check the `splits` of the labelled folder `root` and return their files and labels; raise
    DataError (data) or ConfigError (settings) on a problem. Splits not asked for stay empty.

    `classes`: ids (folder names, wnids) or names (words.txt, case-insensitive, any synonym), in label
    order; None: all classes, sorted by id. `val_fraction`: the share of each class held out as val by
    the sha256 rule, only for an ImageFolder without train/ + val/ folders. `limit` keeps, per split,
    the first n files of each class (sorted by path, after the split rule). With `check_images`, every
    kept file is opened and verified by PIL.
    """
    _check_settings(layout, val_fraction, splits)
    limits = check_limit(limit, SPLITS)
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: data root does not exist ({_HINT})")
    if not root.is_dir():
        raise DataError(f"{root}: data root is not a folder ({_HINT})")

    kind = _detect(root) if layout == "auto" else layout
    result = LabelledLayout(root=root, kind=kind, class_ids=[], class_names=[])
    if kind == "tiny_imagenet":
        files = _scan_tiny_imagenet(result, classes, splits)
    else:
        files = _scan_image_folder(result, classes, val_fraction, splits)
    for split in SPLITS:
        if split not in splits:
            continue
        for label in range(result.num_classes):
            kept = files[split].get(label, [])[: limits.get(split)]
            getattr(result, f"{split}_files").extend(kept)
            getattr(result, f"{split}_labels").extend([label] * len(kept))
    if check_images:
        for path in result.train_files + result.val_files:
            check_image(path)
    return result


def read_resized(path: str | os.PathLike, size: int = 64) -> torch.Tensor:
    """Decode any image PIL reads -> RGB uint8 tensor (3, size, size), bicubic-resized if needed."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except Exception as err:  # PIL raises many types on damaged files
        raise DataError(f"{path}: cannot read image ({_one_line(err)})") from None
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()

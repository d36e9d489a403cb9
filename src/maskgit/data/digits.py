"""Export scikit-learn's UCI digits (1,797 8x8 images, 10 classes, packaged: no download) as an
ImageFolder, a small real labelled data set for class-conditional runs on any machine.

    out/0/digit_0000.png ... out/9/digit_1796.png   RGB PNG size x size, dark ink on white paper
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from maskgit.errors import ConfigError, DataError, exit_on_user_error

SOURCE_SIZE = 8
MAX_VALUE = 16  # the digits' pixel values are 0..16 (ink)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < SOURCE_SIZE or size % SOURCE_SIZE:
        raise ConfigError(f"size must be a positive multiple of {SOURCE_SIZE} (the digits are 8x8), "
                          f"found {size}")


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (N,8,8) float 0..16, targets (N,) int) of sklearn's packaged copy."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("scikit-learn is not installed (pip install scikit-learn)") from None
    digits = load_digits()
    return digits.images, digits.target


def to_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 digit (0..16 ink) -> uint8 (size, size, 3): 255 - round(v * 255 / 16), nearest upscale."""
    grey = (255 - np.round(image * 255.0 / MAX_VALUE)).clip(0, 255).astype(np.uint8)
    scale = size // SOURCE_SIZE
    big = np.repeat(np.repeat(grey, scale, axis=0), scale, axis=1)
    return np.repeat(big[:, :, None], 3, axis=2)


def _is_nonempty(path: Path) -> bool:
    return path.is_file() or path.is_symlink() or (path.is_dir() and any(path.iterdir()))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write(partial: Path, images: np.ndarray, targets: np.ndarray, size: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for digit in sorted({int(t) for t in targets}):
        (partial / str(digit)).mkdir(parents=True)
    for index, (image, target) in enumerate(zip(images, targets, strict=True)):
        name = str(int(target))
        Image.fromarray(to_rgb(image, size)).save(partial / name / f"digit_{index:04d}.png")
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def export_digits(out: str | os.PathLike, size: int = 64, *, force: bool = False) -> dict[str, int]:
    """Write the digits under `out` as out/<digit>/digit_<index>.png; return the count per class.

    Written into `out.partial/` and renamed, so `out` is never half-written. An existing non-empty
    `out` is an error unless `force` (then it is replaced)."""
    _check_size(size)
    out = Path(out).expanduser()
    if _is_nonempty(out) and not force:
        raise DataError(f"{out}: already exists and is not empty (use --force to replace it)")
    images, targets = _load_digits()
    partial = out.with_name(out.name + ".partial")
    try:
        _remove(partial)  # left by a killed export
        counts = _write(partial, images, targets, size)
        if out.exists() or out.is_symlink():
            old = out.with_name(out.name + ".replaced")
            _remove(old)
            os.replace(out, old)
            os.replace(partial, out)
            _remove(old)
        else:
            os.replace(partial, out)
    except OSError as err:
        raise DataError(f"{out}: cannot write ({' '.join(str(err).split())})") from None
    return counts


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="maskgit-export-digits",
        description="Export scikit-learn's UCI digits (1,797 images, 10 classes; offline) as an image folder "
        "out/<digit>/digit_NNNN.png, for data=image_folder.")
    parser.add_argument("out", help="the folder to create")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels, a multiple of 8")
    parser.add_argument("--force", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    counts = export_digits(args.out, args.size, force=args.force)
    size = f"{args.size}x{args.size}"
    print(f"wrote {sum(counts.values())} digits ({len(counts)} classes, {size}) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

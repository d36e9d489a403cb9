"""A small procedurally generated data set in the lab's layout, for tests and smoke runs.

Images are gradients with a few flat-coloured shapes (easy for a tiny VQGAN); masks are random
rectangles and ellipses covering 10-30% of the pixels. Everything is a function of the seed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskgit.data.images import IMAGE_SIZE
from maskgit.errors import DataError

MARKER = ".synthetic_complete.json"
HOLE_VALUE = 128
JPEG_QUALITY = 90
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "mask": 3, "meta": 4}


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    # One stream per (seed, split, index): a file does not depend on the other splits' sizes.
    return np.random.default_rng([seed, _SPLIT_IDS[split], index])


def _random_image(rng: np.random.Generator) -> np.ndarray:
    """A linear two-colour gradient with 1-3 flat shapes on top, uint8 (64,64,3)."""
    s = IMAGE_SIZE
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:s, 0:s] / (s - 1) - 0.5
    t = np.clip((xx * np.cos(angle) + yy * np.sin(angle)) + 0.5, 0, 1)[..., None]
    c0, c1 = rng.integers(0, 256, size=(2, 3))
    image = Image.fromarray(((1 - t) * c0 + t * c1).round().astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 4)):
        x0, y0 = rng.integers(0, s - 16, size=2)
        w, h = rng.integers(12, 40, size=2)
        box = [int(x0), int(y0), int(min(x0 + w, s - 1)), int(min(y0 + h, s - 1))]
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle(box, fill=colour)
        elif kind == 1:
            draw.ellipse(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])],
                         fill=colour)
    return np.asarray(image)


def _random_mask(rng: np.random.Generator) -> np.ndarray:
    """Rectangles/ellipses of holes until 10-30% of pixels are holes; uint8 {0,255}, 255 = known."""
    s = IMAGE_SIZE
    target = rng.uniform(0.10, 0.30)
    holes = np.zeros((s, s), dtype=bool)
    for _ in range(200):
        if holes.mean() >= target:
            break
        w, h = rng.integers(4, 24, size=2)
        x0, y0 = rng.integers(0, s - w), rng.integers(0, s - h)
        shape = Image.new("1", (s, s), 0)
        box = [int(x0), int(y0), int(x0 + w - 1), int(y0 + h - 1)]
        if rng.integers(0, 2):
            ImageDraw.Draw(shape).rectangle(box, fill=1)
        else:
            ImageDraw.Draw(shape).ellipse(box, fill=1)
        candidate = holes | np.asarray(shape, dtype=bool)
        if candidate.mean() <= 0.30:
            holes = candidate
    return np.where(holes, 0, 255).astype(np.uint8)


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im.convert("RGB"))


def make_synthetic_dataset(
    root: str | os.PathLike, n_train: int = 256, n_val: int = 64, n_test: int = 32, seed: int = 0
) -> Path:
    """Generate the data set at `root` (atomically, as a folder) unless it is already complete."""
    root = Path(root).expanduser()
    params = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed}
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"synthetic data set needs at least one file per split, got {params}")
    if _is_complete(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        _build(tmp, n_train, n_val, n_test, seed)
        (tmp / MARKER).write_text(json.dumps(params, sort_keys=True) + "\n")
        try:
            os.rename(tmp, root)
        except OSError:
            # Someone else finished first (or root is an empty folder we may replace).
            if _is_complete(root, params):
                return root
            if root.is_dir() and not any(root.iterdir()):
                root.rmdir()
                os.rename(tmp, root)
            else:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _is_complete(root: Path, params: dict) -> bool:
    marker = root / MARKER
    if not marker.is_file():
        if root.exists() and not (root.is_dir() and not any(root.iterdir())):
            raise DataError(f"{root}: exists but is not a complete synthetic data set")
        return False
    found = json.loads(marker.read_text())
    if found != params:
        raise DataError(f"{marker}: synthetic data set was made with {found}, requested {params}")
    return True


def _build(out: Path, n_train: int, n_val: int, n_test: int, seed: int) -> None:
    train_jpegs: list[bytes] = []
    for split, n in (("train", n_train), ("val", n_val)):
        folder = out / split
        folder.mkdir()
        digits = max(5, len(str(n - 1)))
        for i in range(n):
            data = _jpeg_bytes(_random_image(_rng(seed, split, i)))
            (folder / f"image_{i:0{digits}d}.png").write_bytes(data)  # JPEG under .png, as the lab
            if split == "train":
                train_jpegs.append(data)

    # Half of the test ground truth is a train image (decoded, as in the real set), half unseen.
    meta = _rng(seed, "meta", 0)
    in_trainval = np.zeros(n_test, dtype=bool)
    in_trainval[meta.permutation(n_test)[: n_test // 2]] = True
    sources = meta.integers(0, n_train, size=n_test)

    for name in ("masked_image", "mask64", "gt"):
        (out / name).mkdir()
    digits = max(3, len(str(n_test - 1)))
    rows = ["test_index\tkaggle_file\tmae_known_px\tsecond_best_mae\tin_trainval"]
    for i in range(n_test):
        if in_trainval[i]:
            gt = _decode(train_jpegs[sources[i]])
            source = f"train_{sources[i]:05d}.jpg"
        else:
            gt = _random_image(_rng(seed, "test", i))
            source = f"unseen_{i:05d}.jpg"
        mask = _random_mask(_rng(seed, "mask", i))
        masked = np.where(mask[..., None] == 255, gt, HOLE_VALUE).astype(np.uint8)
        stem = f"{i:0{digits}d}"
        Image.fromarray(gt).save(out / "gt" / f"image_{stem}.png", format="PNG")
        Image.fromarray(masked).save(out / "masked_image" / f"image_{stem}.png", format="PNG")
        Image.fromarray(mask).save(out / "mask64" / f"mask_{stem}.png", format="PNG")
        second = meta.uniform(20.0, 45.0)
        rows.append(f"{i}\t{source}\t0.0000\t{second:.4f}\t{bool(in_trainval[i])}")
    (out / "gt_provenance.tsv").write_text("\n".join(rows) + "\n")

"""`maskgit-fid DIR_A DIR_B`: FID, its 95% interval and KID between two image folders.

Scores two folders the way `python -m pytorch_fid A B` and `fidelity --fid` do, with the genuine
Inception network (packaged; no download) and the same code as eval.py. Each folder's features are
cached by content, so scoring a folder again costs only the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from maskgit.errors import DataError, exit_on_user_error
from maskgit.metrics.fid import FEATURE_SIZES, RESIZES, FIDSettings, extractor, reference_features, score
from maskgit.metrics.inception import inception_cache_dir
from maskgit.utils.identity import files_digest

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}


def image_files(folder: str | Path) -> list[Path]:
    """The image files of `folder` (by suffix, sorted by name); one-line errors for a bad folder."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    except OSError as err:
        raise DataError(f"{folder}: cannot list ({err.strerror or err})") from None
    if len(files) < 2:
        raise DataError(f"{folder}: FID needs at least 2 images, found {len(files)} "
                        f"(files ending in {', '.join(sorted(SUFFIXES))})")
    return files


def read_rgb(path: Path) -> np.ndarray:
    """An image file decoded by content as RGB uint8 (H,W,3)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({' '.join(str(err).split())})") from None


def batches(files: Sequence[Path], batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 (B,3,H,W) batches; every image of the folder must have the first one's size."""
    size = None
    for i in range(0, len(files), batch_size):
        arrays = []
        for path in files[i:i + batch_size]:
            array = read_rgb(path)
            size = size or array.shape[:2]
            if array.shape[:2] != size:
                raise DataError(f"{path}: {array.shape[1]}x{array.shape[0]}, but {files[0].name} is "
                                f"{size[1]}x{size[0]}: a folder's images must share one size")
            arrays.append(array)
        yield torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def folder_digest(files: Sequence[Path]) -> str:
    return "folder:" + files_digest(files)


def score_folders(dir_a: str | Path, dir_b: str | Path, settings: FIDSettings, *, batch_size: int = 50,
                  device: str = "cpu", cache_dir: Path | None = None) -> dict:
    """FID, its 95% interval (folders resampled independently) and KID of folder A against B."""
    files = [image_files(dir_a), image_files(dir_b)]
    net = extractor(settings).to(device)
    cache = cache_dir or inception_cache_dir() / "features"
    feats = [reference_features(net, lambda f=f: batches(f, batch_size), data_digest=folder_digest(f),
                                cache_dir=cache, total=len(f), what=f"images of {folder}")
             for f, folder in zip(files, (dir_a, dir_b), strict=True)]
    out = score(feats[0], feats[1], settings, paired=False)
    return {"fid": out["fid"], "fid_ci95": [out.get("fid_ci95_low"), out.get("fid_ci95_high")],
            "kid_mean": out["kid_mean"], "kid_std": out["kid_std"],
            "n_a": len(files[0]), "n_b": len(files[1]),
            "resize": settings.resize, "features": settings.features, "weights_sha256": net.weights_sha256}


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="maskgit-fid", description="FID (with a bootstrap 95% interval) and KID between two image "
        "folders, with the genuine FID Inception network (offline).")
    parser.add_argument("dir_a", help="a folder of images (e.g. inpainted results)")
    parser.add_argument("dir_b", help="a folder of images (e.g. the ground truth)")
    parser.add_argument("--resize", choices=list(RESIZES), default="torch-fidelity",
                        help="torch-fidelity: TF1-style resize to 299 (the standard, default); "
                             "lab: torch bilinear interpolation, as the lab's pytorch-fid script")
    parser.add_argument("--features", type=int, choices=FEATURE_SIZES, default=2048,
                        help="Inception layer (2048: the standard FID)")
    parser.add_argument("--bootstrap", type=int, default=100, help="replicates for the interval (0: none)")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the KID subsets")
    parser.add_argument("--weights", default=None,
                        help="torch-fidelity-format Inception weights (default: the packaged genuine ones)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    settings = FIDSettings(weights_path=args.weights, features=args.features, resize=args.resize,
                           bootstrap=args.bootstrap, kid_subsets=args.kid_subsets, seed=args.seed)
    result = score_folders(args.dir_a, args.dir_b, settings, batch_size=args.batch_size, device=args.device)
    if args.json:
        print(json.dumps(result))
        return 0
    lo, hi = result["fid_ci95"]
    interval = f"  (95% interval {lo:.2f} - {hi:.2f})" if lo is not None else ""
    print(f"FID: {result['fid']:.4f}{interval}")
    print(f"KID: {result['kid_mean']:.5f} +- {result['kid_std']:.5f}")
    print(f"images: {result['n_a']} vs {result['n_b']}; {result['features']}-d features, resize "
          f"{result['resize']}, weights sha256 {result['weights_sha256'][:16]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())

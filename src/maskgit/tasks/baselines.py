"""Baselines in eval.py's units (python eval.py task=baselines [ckpt_path=... | vqgan.ckpt_path=...]).

On the same test images and masks as inpainting (any `masks.source`), each method of
`baselines.methods` is scored like a MaskGIT result: FID and fid_unseen with their 95% intervals,
KID, hole L1/PSNR and SSIM. The VQGAN ceiling rows need a VQGAN: the one a stage-2 `ckpt_path`
names, or `vqgan.ckpt_path` (a VQGAN file or a stage-1 checkpoint) with its `vqgan=` architecture.
`baselines.results` ({name: folder}) adds finished inpaintings (an eval.py run folder or its
`test_results/`, the lab's file names) as rows above the methods, scored the same way, so several
runs can be compared with the baselines in one table and picture.
Writes `baselines.md`, `baselines.csv`, `pictures/baselines.png` (a row per method on the same
images), `metrics.json` (by the runner); the table and picture also go to wandb.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.utils import make_grid

from maskgit.data.images import read_image
from maskgit.data.mask_sources import hidden_ink_report, mask_settings, test_pixels
from maskgit.errors import ConfigError, DataError
from maskgit.metrics.fid import (
    FIDSettings,
    extractor,
    fid_settings,
    reference_features,
    score,
    settings_record,
)
from maskgit.metrics.pixels import region_l1_psnr
from maskgit.models import baseline_fills as baselines
from maskgit.models.checkpoint import build_vqgan
from maskgit.models.vqgan import VQGAN
from maskgit.tasks import class_reading
from maskgit.tasks.runner import EvalTask, Run, model_for
from maskgit.utils.atomic import atomic_path
from maskgit.utils.identity import files_digest, module_digest, tensor_digest
from maskgit.utils.pictures import save_picture

log = logging.getLogger(__name__)

CEILING = ("vqgan_ceiling", "vqgan_ceiling_composite")
METHODS = (*baselines.CLASSICAL, *CEILING)
COLUMNS = ("fid", "fid_ci95_low", "fid_ci95_high", "fid_unseen", "fid_unseen_ci95_low",
           "fid_unseen_ci95_high", "kid_mean", "kid_std", "hole_psnr", "hole_l1", "ssim", "class_accuracy")


class Baselines(EvalTask):
    """`picture_rows`: results to show above the baselines in the picture (e.g. a model's inpainting
    of the first `baselines.picture_images` test images). After a run, `shown_masked` and `shown`
    ({row: images}, the ground truth last) hold what the picture shows."""

    name = "baselines"
    stores_points = False  # no decoding: nothing a sweep would repeat

    def __init__(self, picture_rows: dict[str, Tensor] | None = None):
        self.picture_rows = dict(picture_rows or {})

    def settings(self, cfg: DictConfig) -> None:
        if OmegaConf.is_missing(cfg, "ckpt_path"):  # optional here: only the ceiling rows use a model
            with open_dict(cfg):
                cfg.ckpt_path = None
        self.methods = list(cfg.baselines.methods)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"baselines.methods: unknown {unknown or 'empty list'}; "
                              f"valid: {', '.join(METHODS)}")
        self.masks = mask_settings(cfg.get("masks"))
        self.results = {str(name): Path(str(folder))
                        for name, folder in (cfg.baselines.get("results") or {}).items()}

    def load(self, cfg: DictConfig) -> VQGAN | None:
        datamodule = instantiate(cfg.data)
        self.layout, self.read = datamodule.check(splits=("test",)), datamodule.read
        self.reader = class_reading.reader_for(cfg, datamodule)
        vqgan = _vqgan(cfg) if any(m in CEILING for m in self.methods) else None
        if vqgan is None and any(m in CEILING for m in self.methods):
            log.warning("baselines: no VQGAN given (ckpt_path or vqgan.ckpt_path): the VQGAN ceiling rows "
                        "are left out")
            self.methods = [m for m in self.methods if m not in CEILING]
        return vqgan

    def run(self, run: Run) -> dict[str, Any]:
        cfg, out, vqgan, layout = run.cfg, run.out, run.loaded, self.layout
        masked, known, truth = test_pixels(layout, self.masks, read=self.read)
        labels = torch.tensor(layout.val_labels) if self.reader is not None else None
        fid = fid_settings(cfg)
        unseen = (~torch.tensor(layout.in_trainval, dtype=torch.bool)
                  if layout.in_trainval is not None and cfg.metrics.fid.unseen_subset else None)
        cache = Path(cfg.paths.cache_dir) / "fid"
        reference = (reference_features(extractor(fid), lambda: truth.split(64),
                                        data_digest=files_digest(layout.gt_files), cache_dir=cache,
                                        total=len(truth), what="ground-truth images")
                     if fid else None)
        rows: dict[str, dict[str, float]] = {}
        pictures: dict[str, Tensor] = dict(self.picture_rows)
        seconds: dict[str, float] = {}
        ceiling = None
        for method in [*self.results, *self.methods]:
            start = time.perf_counter()
            if method in self.results:
                images = read_results(self.results[method], result_names(len(layout.gt_files)))
            elif method in CEILING:
                ceiling = baselines.vqgan_ceiling(vqgan, truth) if ceiling is None else ceiling
                images = (ceiling if method == "vqgan_ceiling"
                          else baselines.paste_known(ceiling, masked, known))
            else:
                images = baselines.CLASSICAL[method](masked, known)
            rows[method] = score_images(images, truth, known, fid=fid, reference=reference, unseen=unseen,
                                        cache_dir=cache, what=f"{method} results")
            if labels is not None:  # can the class still be read (labelled data)
                rows[method]["class_accuracy"] = self.reader.accuracy(images, labels)
            pictures[method] = images[: int(cfg.baselines.picture_images)]
            seconds[method] = round(time.perf_counter() - start, 2)
            log.info("baselines: %s %s", method, {k: round(v, 4) for k, v in rows[method].items()})
        write_table(rows, out / "baselines.md", out / "baselines.csv",
                    title=f"Baselines on {len(truth)} test images, masks {self.masks['source']}")
        shown = int(cfg.baselines.picture_images)
        self.shown_masked, self.shown = masked[:shown], {**pictures, "ground truth": truth[:shown]}
        if pictures:
            picture = methods_picture(pictures, truth[:shown])
            save_picture(picture, out / "pictures" / "baselines.png")
        log.info("baselines: %s", out / "baselines.md")
        return {"methods": list(rows), "metrics": rows, "num_images": len(truth), "masks": self.masks,
                "hole_fraction": round(float((~known).float().mean()), 5),
                **hidden_ink_report(self.masks, truth, known),
                "timings_s": seconds, "vqgan": _vqgan_record(vqgan),
                "class_reading": class_reading.references(self.reader, labels, masked=masked, original=truth)
                if labels is not None else None,
                "fid": {**(settings_record(fid) if fid else {}),
                        "unseen_images": int(unseen.sum()) if unseen is not None else None}}

    def log(self, loggers: list, report: dict[str, Any], out: Path) -> None:
        rows = report["metrics"]
        columns = ["method", *COLUMNS]
        data = [[name, *(m.get(c) for c in COLUMNS)] for name, m in rows.items()]
        for logger in loggers:
            logger.log_metrics({f"baselines/{name}/{k}": v for name, m in rows.items() for k, v in m.items()})
            if hasattr(logger, "log_table"):
                logger.log_table("baselines/table", columns=columns, data=data)
            picture = out / "pictures" / "baselines.png"
            if hasattr(logger, "log_image") and picture.is_file():
                logger.log_image("baselines/pictures", [str(picture)], caption=[" / ".join(rows)])


def result_names(n: int) -> list[str]:
    """The files eval.py's inpainting writes for test images 0..n-1 (the lab's names; a labelled
    folder's own file names differ)."""
    return [f"image_{i:03d}.png" for i in range(n)]


def read_results(folder: Path, names: list[str]) -> Tensor:
    """The inpainted images of the test split in `folder` (an eval.py run or its test_results/), in
    the order of `names` (`result_names`)."""
    folder = folder / "test_results" if (folder / "test_results").is_dir() else folder
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:  # also when the folder does not exist
        raise DataError(f"baselines.results: {folder} lacks {len(missing)} of the {len(names)} test images "
                        f"(first: {missing[0]}); give an eval.py run folder or "
                        "its test_results/")
    return torch.stack([read_image(folder / n) for n in names])


def score_images(images: Tensor, truth: Tensor, known: Tensor, *, fid: FIDSettings | None,
                 reference: Tensor | None, unseen: Tensor | None, cache_dir: Path,
                 what: str = "images") -> dict[str, float]:
    """eval.py's metrics of finished uint8 images against the ground truth of the same test images."""
    l1, psnr = region_l1_psnr(images, truth, ~known)
    ssim = structural_similarity_index_measure(images.float() / 255, truth.float() / 255, data_range=1.0)
    out = {"hole_l1": float(l1.mean()), "hole_psnr": float(psnr.mean()), "ssim": float(ssim)}
    if fid is not None:
        digest = "images:" + tensor_digest(images)
        feats = reference_features(extractor(fid), lambda: images.split(64), data_digest=digest,
                                   cache_dir=cache_dir, total=len(images), what=what)
        out.update(score(feats, reference, fid, paired=True))
        if unseen is not None and int(unseen.sum()) >= 2:
            out.update(score(feats[unseen], reference[unseen], fid, paired=True, prefix="fid_unseen"))
    return out


def write_table(rows: dict[str, dict[str, float]], markdown: Path, csv_path: Path, title: str) -> str:
    """The rows as a Markdown table (FID [95% interval], KID x 1e3, pixel metrics, and on labelled data
    the class accuracy) and a CSV."""
    classes = any("class_accuracy" in m for m in rows.values())
    lines = [f"# {title}", "",
             "| method | FID [95% interval] | FID unseen [95% interval] | KID x 1e3 | hole PSNR (dB) | "
             "hole L1 | SSIM |" + (" class accuracy |" if classes else ""),
             "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if classes else "")]
    for name, m in rows.items():
        lines.append(f"| {name} | {_fid_cell(m, 'fid')} | {_fid_cell(m, 'fid_unseen')} | "
                     + (f"{m['kid_mean'] * 1e3:.2f} ± {m['kid_std'] * 1e3:.2f}" if "kid_mean" in m else "")
                     + f" | {m['hole_psnr']:.2f} | {m['hole_l1']:.4f} | {m['ssim']:.4f} |"
                     + (f" {m['class_accuracy']:.3f} |" if classes else ""))
    text = "\n".join(lines) + "\n"
    with atomic_path(markdown) as tmp:
        tmp.write_text(text)
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["method", *COLUMNS])
        writer.writerows([[name, *(m.get(c, "") for c in COLUMNS)] for name, m in rows.items()])
    return text


def _fid_cell(m: dict[str, float], name: str) -> str:
    if name not in m:
        return ""
    if name + "_ci95_low" not in m:
        return f"{m[name]:.2f}"
    return f"{m[name]:.2f} [{m[name + '_ci95_low']:.2f}, {m[name + '_ci95_high']:.2f}]"


def methods_picture(pictures: dict[str, Tensor], truth: Tensor, label_width: int = 150) -> Tensor:
    """One row per method (in order) and the ground truth last, on the same images, each row named."""
    import numpy as np
    from PIL import Image, ImageDraw

    grid = make_grid(torch.cat([*pictures.values(), truth]), nrow=len(truth), padding=2, pad_value=255)
    canvas = Image.new("RGB", (label_width + grid.shape[2], grid.shape[1]), "white")
    canvas.paste(Image.fromarray(grid.permute(1, 2, 0).numpy()), (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    row = truth.shape[2] + 2
    for i, name in enumerate([*pictures, "ground truth"]):
        draw.text((4, 2 + i * row + row // 2 - 6), name, fill="black")
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def _vqgan(cfg: DictConfig) -> VQGAN | None:
    """The VQGAN of a stage-2 `ckpt_path`, else `vqgan_ckpt_path` / `vqgan.ckpt_path` with `vqgan=`."""
    if cfg.ckpt_path:
        return model_for(cfg)[0].vqgan
    path = cfg.get("vqgan_ckpt_path") or cfg.vqgan.get("ckpt_path")
    if not path:
        return None
    return build_vqgan({**OmegaConf.to_container(cfg.vqgan, resolve=True), "ckpt_path": path})


def _vqgan_record(vqgan: VQGAN | None) -> dict[str, Any] | None:
    if vqgan is None:
        return None
    return {"config": dict(vqgan.config), "sha256": module_digest(vqgan)}

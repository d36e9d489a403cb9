"""Inpaint the test split with a trained checkpoint and measure it (eval.py, task=inpaint).

Outputs in the run folder: `test_results/image_NNN.png` (the lab's names, so the lab's own FID
script works on them), `pictures/` (decoding progressions and a masked / result / truth grid) and
`metrics.json` (written by the runner, last). Images and pictures go to `*.partial/` first and are
renamed only when the run completes.

Within one process (a Hydra multirun) the model, the test set and the FID networks are loaded once
and reused by every point; every finished point is kept in the sweep point store (see `runner`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from maskgit.data.datamodule import ImageDataModule
from maskgit.data.images import read_image
from maskgit.data.layout import LabLayout
from maskgit.data.mask_sources import hidden_ink_report, mask_settings
from maskgit.decoding.iterative import DecodeSettings
from maskgit.errors import ConfigError
from maskgit.metrics.fid import fid_settings, settings_record
from maskgit.modules.inpainting import InpaintingEvaluator
from maskgit.tasks import class_reading, runner
from maskgit.utils.identity import files_digest
from maskgit.utils.pictures import comparison_grid, save_picture

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    evaluator: InpaintingEvaluator
    datamodule: ImageDataModule
    layout: LabLayout
    reader: class_reading.ClassReader | None = None  # labelled data: class consistency


class Inpaint(runner.EvalTask):
    name = "inpaint"

    def settings(self, cfg: DictConfig) -> DecodeSettings:
        self.decoding = runner.decode_settings(cfg)
        self.masks = mask_settings(cfg.get("masks"))  # the data set's mask64/, or generated on gt/
        self.use_labels = use_labels(cfg)
        if self.decoding.guidance and not self.use_labels:
            raise ConfigError(f"guidance={self.decoding.guidance} needs the labels: inpaint.use_labels=false "
                              "gives every image the null class, so guidance would change nothing; "
                              "set guidance=0")
        return self.decoding

    def load(self, cfg: DictConfig) -> Loaded:
        model, ckpt_identity = runner.model_for(cfg)
        datamodule: ImageDataModule = instantiate(cfg.data, masks=cfg.get("masks"))
        runner.check_guidance(model, self.decoding)
        runner.align_classes(model, datamodule)
        layout = datamodule.check(splits=("test",))
        datamodule.use_tokenizer(model.vqgan)
        out = Path(cfg.paths.output_dir)
        test_files = [*layout.test_files, *layout.mask_files, *(layout.gt_files or [])]
        fid = fid_settings(cfg) if layout.gt_files is not None else None
        unseen = None
        if fid is not None and layout.in_trainval is not None and cfg.metrics.fid.unseen_subset:
            unseen = ~torch.tensor(layout.in_trainval, dtype=torch.bool)
        evaluator = InpaintingEvaluator(
            model, self.decoding, out / "test_results.partial", fid=fid,
            reference=(layout.gt_files, datamodule.files_key(layout.gt_files)) if fid is not None else None,
            unseen=unseen, cache_dir=Path(cfg.paths.cache_dir) / "fid", composite=cfg.composite,
            num_pictures=cfg.pictures.num_images, pictures_dir=out / "pictures.partial",
            memo_scope=f"{ckpt_identity}|{files_digest(test_files)}|{self.masks}|fused={cfg.fused_attention}"
                       f"|labels={self.use_labels}",
            norm=datamodule.test_norm, read=datamodule.read, use_labels=self.use_labels)
        reader = class_reading.reader_for(cfg, datamodule)
        return Loaded(evaluator, datamodule, layout, reader)

    def run(self, run: runner.Run) -> dict[str, Any] | None:
        cfg, out = run.cfg, run.out
        evaluator, datamodule, layout = run.loaded.evaluator, run.loaded.datamodule, run.loaded.layout
        results_dir, partial = out / "test_results", out / "test_results.partial"
        trainer = runner.test_trainer(cfg, run.loggers, partial, out / "pictures.partial")
        trainer.test(evaluator, datamodule=datamodule, verbose=False)
        if trainer.global_rank != 0:
            return None
        runner.publish(partial, results_dir)
        runner.publish(out / "pictures.partial", out / "pictures")
        test_set = datamodule.test_set
        n = cfg.pictures.grid_images
        if n and test_set.gt_images is not None:
            files = sorted(results_dir.glob("image_*.png"))[:n]
            grid = comparison_grid(test_set.masked_images[: len(files)],
                                   torch.stack([read_image(f) for f in files]),
                                   test_set.gt_images[: len(files)])
            save_picture(grid, out / "pictures" / "grid.png")
        holes = (~test_set.masks).sum((1, 2)).float().mean()
        if run.loaded.reader is not None and test_set.labels is not None:
            inpainted = torch.stack([read_image(results_dir / f"image_{i:03d}.png")
                                     for i in range(len(test_set))])
            evaluator.final_metrics.update(class_reading.reading(
                run.loaded.reader, test_set.labels, inpainted=inpainted, masked=test_set.masked_images,
                original=test_set.gt_images))
        log.info("metrics: %s", evaluator.final_metrics)
        return {
            **runner.model_report(cfg, evaluator),
            "num_images": len(list(results_dir.glob("image_*.png"))),
            "composite": bool(cfg.composite),
            "inpaint": {"use_labels": self.use_labels},
            "masks": {**self.masks, "hole_pixels_mean": round(float(holes), 3),
                      "masked_tokens_mean": round(float(test_set.token_masks.sum(1).float().mean()), 3),
                      **hidden_ink_report(self.masks, test_set.gt_images, test_set.masks)},
            "fid": {**(settings_record(evaluator.fid) if evaluator.fid else {}),
                    "unseen_images": layout.in_trainval.count(False) if layout.in_trainval else None},
        }

    def log(self, loggers: list, report: dict[str, Any], out: Path) -> None:
        metrics = {f"test/{k}": v for k, v in report["metrics"].items()}
        cfg = report["config"]
        for logger in loggers:
            logger.log_metrics(metrics)
            if hasattr(logger, "log_image"):
                pictures = sorted((out / "pictures").glob("*.png"))
                if pictures:
                    logger.log_image("test/pictures", [str(p) for p in pictures],
                                     caption=[p.stem for p in pictures])
                columns = list(metrics) + ["mask_func", "total_iter", "sweet_spot", "composite"]
                logger.log_table("test/summary", columns=columns,
                                 data=[list(metrics.values()) + [cfg["mask_func"], cfg["total_iter"],
                                                                 cfg["sweet_spot"], cfg["composite"]]])


def use_labels(cfg: DictConfig) -> bool:
    """`inpaint.use_labels` (default true): false decodes a class-conditional model with the null class."""
    return bool((cfg.get("inpaint") or {}).get("use_labels", True))

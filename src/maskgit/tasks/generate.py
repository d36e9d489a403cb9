"""Unconditional generation (python eval.py task=generate ckpt_path=... generate.num_samples=N).

Decodes N fully masked canvases with eval.py's decoding settings (sample i seeded from (seed, i)),
and writes `generated/sample_0000.png ...` (into `generated.partial/`, renamed when complete),
`pictures/samples.png` (a grid), progression pictures for the first `pictures.num_images` samples,
and `metrics.json` (by the runner: config, FID against the val images, timings, versions). The val
statistics are cached on disk, keyed by the val files' content and the Inception weights. In a
multirun, finished points are kept in the sweep point store like inpainting points (the task, N and
the FID reference are part of the key).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torchvision.utils import make_grid

from maskgit.data.datamodule import CatFaceDataModule
from maskgit.data.images import read_image
from maskgit.decoding import DecodeSettings
from maskgit.errors import ConfigError
from maskgit.identity import files_digest
from maskgit.metrics.fid import fid_settings, settings_record
from maskgit.modules.generation import UnconditionalGenerator
from maskgit.pictures import save_picture
from maskgit.tasks import runner

log = logging.getLogger(__name__)


class Generate(runner.EvalTask):
    name = "generate"

    def settings(self, cfg: DictConfig) -> DecodeSettings:
        """num_samples and fid_reference_limit are typed and ranged in maskgit.settings."""
        n = int(cfg.generate.num_samples)
        if cfg.metrics.fid.enabled and n < 2:
            raise ConfigError(f"FID needs at least 2 samples, got generate.num_samples={n} "
                              "(or set metrics.fid.enabled=false)")
        self.decoding = runner.decode_settings(cfg)
        return self.decoding

    def load(self, cfg: DictConfig) -> UnconditionalGenerator:
        model, ckpt_identity = runner.model_for(cfg)
        datamodule: CatFaceDataModule = instantiate(cfg.data)
        layout = datamodule.check(splits=("val",))
        out = Path(cfg.paths.output_dir)
        fid, self.reference = fid_settings(cfg), None
        if fid is not None:
            files = layout.val_files[: cfg.generate.get("fid_reference_limit")]
            if len(files) < 2:
                raise ConfigError(f"FID needs at least 2 val images as its reference, got {len(files)}")
            self.reference = (files, files_digest(files))
        return UnconditionalGenerator(
            model, self.decoding, out / "generated.partial", int(cfg.generate.num_samples),
            batch_size=int(cfg.data.batch_size), fid=fid, reference=self.reference,
            cache_dir=Path(cfg.paths.cache_dir) / "fid", num_pictures=cfg.pictures.num_images,
            pictures_dir=out / "pictures.partial", memo_scope=f"{ckpt_identity}|fused={cfg.fused_attention}")

    def run(self, run: runner.Run) -> dict[str, Any] | None:
        cfg, out, generator = run.cfg, run.out, run.loaded
        samples_dir, partial = out / "generated", out / "generated.partial"
        trainer = runner.test_trainer(cfg, run.loggers, partial, out / "pictures.partial")
        trainer.test(generator, verbose=False)
        if trainer.global_rank != 0:
            return None
        runner.publish(partial, samples_dir)
        runner.publish(out / "pictures.partial", out / "pictures")
        files = sorted(samples_dir.glob("sample_*.png"))
        n = int(cfg.generate.grid_images)
        if n:
            shown = torch.stack([read_image(f) for f in files[:n]])
            save_picture(make_grid(shown, nrow=min(8, len(shown)), padding=2, pad_value=255),
                         out / "pictures" / "samples.png")
        log.info("metrics: %s", generator.final_metrics)
        return {
            **runner.model_report(cfg, generator),
            "num_samples": len(files),
            "fid": {**(settings_record(generator.fid) if generator.fid else {}), "reference": "val",
                    "reference_images": len(self.reference[0]) if self.reference else None},
        }

    def log(self, loggers: list, report: dict[str, Any], out: Path) -> None:
        metrics = {f"generate/{k}": v for k, v in report["metrics"].items()}
        grid = out / "pictures" / "samples.png"
        progressions = sorted((out / "pictures").glob("progression_*.png"))
        for logger in loggers:
            if metrics:
                logger.log_metrics(metrics)
            if not hasattr(logger, "log_image"):
                continue
            if grid.is_file():
                logger.log_image("generate/samples", [str(grid)])
            if progressions:  # one key per picture size
                logger.log_image("generate/progressions", [str(p) for p in progressions],
                                 caption=[p.stem for p in progressions])

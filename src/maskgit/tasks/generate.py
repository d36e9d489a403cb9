"""Unconditional generation (python eval.py task=generate ckpt_path=... generate.num_samples=N).

Decodes N fully masked canvases with eval.py's decoding settings (sample i seeded from (seed, i)),
and writes `generated/sample_0000.png ...` (into `generated.partial/`, renamed when complete),
`pictures/samples.png` (a grid), progression pictures for the first `pictures.num_images` samples,
and `metrics.json` (config, FID against the val images, timings, versions; written last and
atomically). The val statistics are cached on disk, keyed by the val files' content and the Inception
weights. In a multirun, finished points are kept in the sweep point store like inpainting points
(the task, N and the FID reference are part of the key).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import make_grid

from maskgit.data.datamodule import CatFaceDataModule
from maskgit.data.images import read_image
from maskgit.data.token_cache import files_digest
from maskgit.errors import ConfigError
from maskgit.generation import UnconditionalGenerator
from maskgit.metrics.fid import fid_settings, settings_record
from maskgit.pictures import save_picture
from maskgit.sweeps.multirun import prepare_multirun_job
from maskgit.sweeps.points import PointStore
from maskgit.tasks.eval import common_report, decode_settings, model_for, publish, test_trainer
from maskgit.utils.atomic import save_json
from maskgit.utils.config import save_config_tree
from maskgit.utils.loggers import build_loggers, finish_loggers

log = logging.getLogger(__name__)


def _positive(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a positive integer" + (" or null" if allow_none else "")
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")
    return value


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Sample, write images and pictures, measure FID; returns the metrics file's content."""
    settings = decode_settings(cfg)
    gen = cfg.generate
    num_samples = _positive("generate.num_samples", gen.num_samples)
    reference_limit = _positive("generate.fid_reference_limit", gen.get("fid_reference_limit"), True)
    fid_cfg = cfg.metrics.fid
    if fid_cfg.enabled and num_samples < 2:
        raise ConfigError(f"FID needs at least 2 samples, got generate.num_samples={num_samples} "
                          "(or set metrics.fid.enabled=false)")
    multirun = prepare_multirun_job(cfg)
    save_config_tree(cfg, cfg.paths.output_dir)
    store = PointStore(cfg, settings)
    if multirun and cfg.get("reuse_results", True) and (done := store.reuse(cfg)) is not None:
        return done
    L.seed_everything(cfg.seed, workers=True)
    model, ckpt_identity = model_for(cfg)
    datamodule: CatFaceDataModule = instantiate(cfg.data)
    layout = datamodule.check(splits=("val",))

    out = Path(cfg.paths.output_dir)
    samples_dir, partial = out / "generated", out / "generated.partial"
    fid, reference = fid_settings(cfg), None
    if fid is not None:
        files = layout.val_files[:reference_limit]
        if len(files) < 2:
            raise ConfigError(f"FID needs at least 2 val images as its reference, got {len(files)}")
        reference = (files, files_digest(files))
    generator = UnconditionalGenerator(
        model, settings, partial, num_samples, batch_size=int(cfg.data.batch_size), fid=fid,
        reference=reference, cache_dir=Path(cfg.paths.cache_dir) / "fid",
        num_pictures=cfg.pictures.num_images, pictures_dir=out / "pictures.partial",
        memo_scope=f"{ckpt_identity}|fused={cfg.fused_attention}")

    loggers = build_loggers(cfg.get("logger"), cfg.paths.cache_dir)
    try:
        trainer = test_trainer(cfg, loggers, partial, out / "pictures.partial")
        start = time.perf_counter()
        trainer.test(generator, verbose=False)
        if trainer.global_rank != 0:
            return {}
        report = _finish(cfg, generator, reference, samples_dir, partial, time.perf_counter() - start,
                         point={"key": store.key, "store": str(store.path)})
        store.record(report, str(out))
        _log(loggers, report, out)
        return report
    finally:
        finish_loggers(loggers)


def _finish(cfg: DictConfig, generator: UnconditionalGenerator, reference, samples_dir: Path,
            partial: Path, seconds: float, point: dict[str, str]) -> dict[str, Any]:
    publish(partial, samples_dir)
    out = Path(cfg.paths.output_dir)
    publish(out / "pictures.partial", out / "pictures")
    files = sorted(samples_dir.glob("sample_*.png"))
    n = int(cfg.generate.grid_images)
    if n:
        shown = torch.stack([read_image(f) for f in files[:n]])
        save_picture(make_grid(shown, nrow=min(8, len(shown)), padding=2, pad_value=255),
                     Path(cfg.paths.output_dir) / "pictures" / "samples.png")
    report = {
        "task": "generate",
        **common_report(cfg, generator, seconds, point),
        "num_samples": len(files),
        "fid": {**(settings_record(generator.fid) if generator.fid else {}), "reference": "val",
                "reference_images": len(reference[0]) if reference else None},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    save_json(report, Path(cfg.paths.output_dir) / "metrics.json")
    log.info("metrics: %s", report["metrics"])
    return report


def _log(loggers, report: dict[str, Any], out: Path) -> None:
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

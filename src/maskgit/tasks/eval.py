"""Inpaint the test split with a trained checkpoint and measure it (eval.py).

Outputs in the run folder: `test_results/image_NNN.png` (the lab's names, so the lab's own FID
script works on them), `pictures/` (decoding progressions and a masked / result / truth grid) and
`metrics.json` (config, metrics, timings, versions), written last and atomically. Images go to
`test_results.partial/` first and are renamed only when the run completes.

Within one process (a Hydra multirun) the model, the test tokens and the FID networks are loaded
once and reused by every point. Every finished point is also kept in a store keyed by what decides
its result (`maskgit.sweeps.points`): a multirun job whose point is there already copies its metrics
and loads nothing (`+reuse_results=false` computes it again).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from maskgit.data.datamodule import CatFaceDataModule, InpaintingSet
from maskgit.data.images import read_image
from maskgit.data.mask_sources import build_test_set, mask_settings
from maskgit.data.token_cache import files_digest, module_digest
from maskgit.errors import ConfigError
from maskgit.inpainting import DecodeSettings, InpaintingEvaluator
from maskgit.maskgit import MaskGIT
from maskgit.metrics.fid import fid_settings, settings_record
from maskgit.pictures import comparison_grid, save_picture
from maskgit.settings import check_settings
from maskgit.sweeps.multirun import prepare_multirun_job
from maskgit.sweeps.points import PointStore
from maskgit.utils.atomic import save_json
from maskgit.utils.config import save_config_tree
from maskgit.utils.loggers import build_loggers, finish_loggers
from maskgit.utils.quiet import quiet_libraries
from maskgit.utils.versions import versions

log = logging.getLogger(__name__)


def decode_settings(cfg: DictConfig) -> DecodeSettings:
    """The decoding options (their types and ranges: maskgit.settings, checked as evaluate starts)."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: python eval.py ckpt_path=/path/to/last.ckpt")
    return DecodeSettings(mask_func=cfg.mask_func, total_iter=int(cfg.total_iter),
                          sweet_spot=int(cfg.sweet_spot), choice_temperature=float(cfg.choice_temperature),
                          confidence=cfg.confidence, temperature=float(cfg.temperature),
                          seed=int(cfg.seed))


@cache
def load_model(ckpt_path: str, vqgan_ckpt_path: str | None, mtime: float, lab_model_json: str) -> MaskGIT:
    """A train.py checkpoint, or a lab transformer file read with the `model`/`vqgan` configs."""
    del mtime  # part of the cache key: a rewritten checkpoint is loaded again
    lab = json.loads(lab_model_json)
    return MaskGIT.from_checkpoint(ckpt_path, vqgan_ckpt_path, lab_model=lab["model"],
                                   lab_attention_names=lab["attention_names"])


def lab_model_json(cfg: DictConfig) -> str:
    """What reading a lab transformer file needs from the config, as a cacheable string."""
    names = cfg.get("lab_attention_names")
    return json.dumps({"model": OmegaConf.to_container(cfg.model, resolve=True),
                       "attention_names": list(names) if names else None}, sort_keys=True)


_TEST_SETS: dict[str, InpaintingSet] = {}


def load_test_set(key: str, datamodule: CatFaceDataModule, masks: dict[str, Any]) -> InpaintingSet:
    if key not in _TEST_SETS:
        _TEST_SETS[key] = build_test_set(datamodule, masks)
    return _TEST_SETS[key]


def model_for(cfg: DictConfig) -> tuple[MaskGIT, tuple[str, float]]:
    """The model `cfg.ckpt_path` names (loaded once per process) and the checkpoint's identity."""
    ckpt = Path(cfg.ckpt_path)
    identity = (str(ckpt.resolve()) if ckpt.exists() else str(ckpt),
                ckpt.stat().st_mtime if ckpt.exists() else 0.0)
    model = load_model(identity[0], cfg.get("vqgan_ckpt_path"), identity[1], lab_model_json(cfg))
    # Same weights and, in eval mode, the same logits (tested); SDPA is the faster kernel.
    model.transformer.set_fused_attention(bool(cfg.fused_attention))
    return model, identity


def common_report(cfg: DictConfig, module: InpaintingEvaluator, seconds: float,
                  point: dict[str, str]) -> dict[str, Any]:
    """The metrics.json fields every eval.py task writes."""
    return {
        "metrics": module.final_metrics,
        "timings_s": {**{k: round(v, 3) for k, v in module.seconds.items()}, "total": round(seconds, 3)},
        "decoded_now": module.decoded_now,
        "skipped": False,
        "point": point,
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "vqgan": module.model.vqgan_record(),
        "versions": versions(),
    }


def test_trainer(cfg: DictConfig, loggers: list, partial: Path, pictures: Path) -> L.Trainer:
    """The Trainer that runs an eval task, with its (emptied) partial output folders made: results
    and pictures are published together by `publish` only once complete."""
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[],
                                     use_distributed_sampler=False, enable_checkpointing=False,
                                     enable_model_summary=False)
    if trainer.global_rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(pictures, ignore_errors=True)
    partial.mkdir(parents=True, exist_ok=True)
    pictures.mkdir(parents=True, exist_ok=True)
    return trainer


def publish(partial: Path, final: Path) -> None:
    """Replace `final` with the completed `partial` folder (a killed run leaves only the partial)."""
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)


TASKS = ("inpaint", "generate", "baselines")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Inpaint (or, with task=generate, sample: see tasks/generate.py), write images and pictures,
    measure; returns the metrics file's content."""
    check_settings(cfg)  # types and ranges, before anything is read
    quiet_libraries()
    task = cfg.get("task", "inpaint")  # one of TASKS (checked above)
    if task == "generate":
        from maskgit.tasks.generate import generate

        return generate(cfg)
    if task == "baselines":
        from maskgit.tasks.baselines import run_baselines

        return run_baselines(cfg)
    settings = decode_settings(cfg)
    masks = mask_settings(cfg.get("masks"))  # the data set's mask64/, or generated on gt/
    multirun = prepare_multirun_job(cfg)  # refuses DDP, names the point's wandb run in the sweep's group
    save_config_tree(cfg, cfg.paths.output_dir)
    store = PointStore(cfg, settings)
    if multirun and cfg.get("reuse_results", True) and (done := store.reuse(cfg)) is not None:
        return done
    L.seed_everything(cfg.seed, workers=True)
    model, ckpt_identity = model_for(cfg)
    datamodule: CatFaceDataModule = instantiate(cfg.data)
    layout = datamodule.check(splits=("test",))
    datamodule.use_tokenizer(model.vqgan)
    key = (f"{layout.root}|{OmegaConf.to_yaml(cfg.data)}|{module_digest(model.vqgan)}|"
           f"{json.dumps(masks, sort_keys=True)}")
    datamodule.test_set = test_set = load_test_set(key, datamodule, masks)

    out = Path(cfg.paths.output_dir)
    results_dir, partial = out / "test_results", out / "test_results.partial"
    fid = fid_settings(cfg) if layout.gt_files is not None else None
    unseen = None
    if fid is not None and layout.in_trainval is not None and cfg.metrics.fid.unseen_subset:
        unseen = ~torch.tensor(layout.in_trainval, dtype=torch.bool)
    evaluator = InpaintingEvaluator(
        model, settings, partial, fid=fid,
        reference=(layout.gt_files, files_digest(layout.gt_files)) if fid is not None else None,
        unseen=unseen, cache_dir=Path(cfg.paths.cache_dir) / "fid",
        composite=cfg.composite, num_pictures=cfg.pictures.num_images, pictures_dir=out / "pictures.partial",
        memo_scope=f"{ckpt_identity}|{key}|fused={cfg.fused_attention}")

    loggers = build_loggers(cfg.get("logger"), cfg.paths.cache_dir)
    try:
        trainer = test_trainer(cfg, loggers, partial, out / "pictures.partial")
        start = time.perf_counter()
        trainer.test(evaluator, datamodule=datamodule, verbose=False)
        if trainer.global_rank != 0:
            return {}
        report = _finish(cfg, evaluator, layout, test_set, masks, results_dir, partial,
                         time.perf_counter() - start, point={"key": store.key, "store": str(store.path)})
        store.record(report, str(out))
        _log(loggers, report, out)
        log.info("results: %s", out)
        return report
    finally:
        finish_loggers(loggers)


def _finish(cfg: DictConfig, evaluator: InpaintingEvaluator, layout, test_set: InpaintingSet,
            masks: dict[str, Any], results_dir: Path, partial: Path, seconds: float,
            point: dict[str, str]) -> dict[str, Any]:
    publish(partial, results_dir)
    out = Path(cfg.paths.output_dir)
    publish(out / "pictures.partial", out / "pictures")
    n = cfg.pictures.grid_images
    if n and layout.gt_files is not None:
        files = sorted(results_dir.glob("image_*.png"))[:n]
        grid = comparison_grid(test_set.masked_images[: len(files)],
                               torch.stack([read_image(f) for f in files]),
                               torch.stack([read_image(f) for f in layout.gt_files[: len(files)]]))
        save_picture(grid, Path(cfg.paths.output_dir) / "pictures" / "grid.png")
    report = {
        **common_report(cfg, evaluator, seconds, point),
        "num_images": len(list(results_dir.glob("image_*.png"))),
        "composite": bool(cfg.composite),
        "masks": {**masks, "hole_pixels_mean": round(float((~test_set.masks).sum((1, 2)).float().mean()), 3),
                  "masked_tokens_mean": round(float(test_set.token_masks.sum(1).float().mean()), 3)},
        "fid": {**(settings_record(evaluator.fid) if evaluator.fid else {}),
                "unseen_images": layout.in_trainval.count(False) if layout.in_trainval else None},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    save_json(report, Path(cfg.paths.output_dir) / "metrics.json")
    log.info("metrics: %s", report["metrics"])
    return report


def _log(loggers, report: dict[str, Any], out: Path) -> None:
    metrics = {f"test/{k}": v for k, v in report["metrics"].items()}
    for logger in loggers:
        logger.log_metrics(metrics)
        if hasattr(logger, "log_image"):
            pictures = sorted((out / "pictures").glob("*.png"))
            if pictures:
                logger.log_image("test/pictures", [str(p) for p in pictures],
                                 caption=[p.stem for p in pictures])
            columns = list(metrics) + ["mask_func", "total_iter", "sweet_spot", "composite"]
            cfg = report["config"]
            logger.log_table("test/summary", columns=columns,
                             data=[list(metrics.values()) + [cfg["mask_func"], cfg["total_iter"],
                                                             cfg["sweet_spot"], cfg["composite"]]])

"""Training: compose -> check data -> instantiate -> fit. Loggers are always closed.

The model config decides the stage: maskgit.modules.maskgit.MaskGIT (stage 2) reads VQGAN tokens,
maskgit.modules.vqgan_training.VQGANTraining (stage 1, `experiment=vqgan`) reads images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from maskgit.config.record import save_config_tree
from maskgit.config.settings import check_settings
from maskgit.data.datamodule import ImageDataModule
from maskgit.errors import ConfigError
from maskgit.modules.maskgit import MaskGIT
from maskgit.sweeps.multirun import device_count
from maskgit.training.checkpoint_io import AtomicCheckpointIO
from maskgit.training.progress_bar import RunProgressBar
from maskgit.training.random_state import RandomStateCheckpoint
from maskgit.training.resume import check_resume_checkpoint
from maskgit.utils.atomic import remove_partial_checkpoints, save_json
from maskgit.utils.loggers import build_loggers, finish_loggers
from maskgit.utils.quiet import quiet_libraries
from maskgit.utils.versions import versions


def instantiate_callbacks(cfg: DictConfig | None, progress_bar: bool = True) -> list[L.Callback]:
    """The configured callbacks, the generators' state in every checkpoint (an exact resume), and,
    with a progress bar, ours (an ETA for the whole run) unless one is configured."""
    callbacks = [instantiate(c) for c in (cfg or {}).values()
                 if isinstance(c, DictConfig) and "_target_" in c]
    callbacks.append(RandomStateCheckpoint())
    if progress_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(RunProgressBar())
    return callbacks


def check_stage(model: L.LightningModule, datamodule: ImageDataModule, trainer_cfg: DictConfig) -> None:
    """The data must be what the model reads; manual optimisation takes no trainer clipping."""
    kind = getattr(model, "input_kind", "tokens")
    if datamodule.serve != kind:
        what = "trains the VQGAN (stage 1)" if kind == "images" else "trains the transformer on VQGAN tokens"
        raise ConfigError(f"{type(model).__name__} {what} and needs data.serve={kind}, but the data "
                          f"serves {datamodule.serve} (use experiment=vqgan for stage 1)")
    if not model.automatic_optimization:
        if trainer_cfg.get("gradient_clip_val"):
            raise ConfigError(f"{type(model).__name__} steps its optimisers itself: set "
                              "trainer.gradient_clip_val=null and clip with model.grad_clip")
        if trainer_cfg.get("accumulate_grad_batches", 1) != 1:
            raise ConfigError(f"{type(model).__name__} steps its optimisers itself: "
                              "trainer.accumulate_grad_batches must be 1")


def processes(trainer_cfg: DictConfig) -> int:
    """How many training processes the trainer settings start."""
    nodes = int(trainer_cfg.get("num_nodes", 1) or 1)
    return device_count(trainer_cfg.get("devices", 1), trainer_cfg.get("accelerator")) * nodes


def check_batch_fits(datamodule: ImageDataModule, trainer_cfg: DictConfig) -> None:
    """Full batches only are trained on: a train split smaller than one batch per process would
    end "successfully" without a single step or checkpoint."""
    n, world = len(datamodule.layout.train_files), processes(trainer_cfg)
    if n // world < datamodule.batch_size:
        images = (f"the {n // world} training images each of the {world} processes gets ({n} in all)"
                  if world > 1 else f"the {n} training images")
        raise ConfigError(f"data.batch_size={datamodule.batch_size} is more than {images}: no training "
                          "step would run; lower data.batch_size")


def limit_to_fast_dev_run(cfg: DictConfig) -> None:
    """`debug=fast` (trainer.fast_dev_run=n) reads n batches of train and of val per process: only
    those images are checked and encoded, not the whole data set."""
    n = cfg.trainer.get("fast_dev_run")
    limit = cfg.data.get("limit")
    if not n or limit is None:
        return
    needed = (1 if n is True else int(n)) * int(cfg.data.batch_size) * processes(cfg.trainer)
    with open_dict(cfg):
        for split in ("train", "val"):
            current = limit.get(split)
            limit[split] = needed if current is None else min(int(current), needed)


def condition_on_classes(cfg: DictConfig, datamodule: ImageDataModule) -> None:
    """A transformer on labelled data gets one class token per class (`model.transformer.num_classes`
    null: the data's count; 0: unconditional) and the class names, recorded in its checkpoints."""
    transformer = cfg.model.get("transformer")
    if not datamodule.num_classes or transformer is None:
        return
    wanted = transformer.get("num_classes")
    if wanted == 0:
        return
    if wanted is not None and wanted != datamodule.num_classes:
        raise ConfigError(f"model.transformer.num_classes={wanted} but the data has {datamodule.num_classes} "
                          "classes (null: the data's count; 0: unconditional)")
    with open_dict(cfg):
        transformer.num_classes = datamodule.num_classes
        cfg.model.classes = datamodule.class_records()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train the configured model; returns the final callback metrics and the best checkpoint path."""
    quiet_libraries()
    check_settings(cfg)  # types and ranges, before anything is read
    limit_to_fast_dev_run(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: ImageDataModule = instantiate(cfg.data)
    datamodule.check(("train", "val"))  # a broken data set fails here, before any model is built
    condition_on_classes(cfg, datamodule)
    model: MaskGIT | L.LightningModule = instantiate(cfg.model)
    check_stage(model, datamodule, cfg.trainer)
    check_batch_fits(datamodule, cfg.trainer)
    if cfg.get("ckpt_path"):
        check_resume_checkpoint(cfg.ckpt_path, model)  # before any token is encoded or step taken
    save_config_tree(cfg, cfg.paths.output_dir)
    if rank_zero_only.rank == 0 and (removed := remove_partial_checkpoints(cfg.paths.log_dir)):
        rank_zero_info(f"removed {len(removed)} partial checkpoint(s) of killed runs, e.g. {removed[0]}")
    if datamodule.serve == "tokens":
        datamodule.use_tokenizer(model.vqgan)
    loggers = build_loggers(cfg.get("logger"), cfg.paths.cache_dir)
    try:
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=instantiate_callbacks(
            cfg.get("callbacks"), progress_bar=cfg.trainer.get("enable_progress_bar", True)),
                                         logger=loggers or False, plugins=[AtomicCheckpointIO()])
        record = {**OmegaConf.to_container(cfg, resolve=True), "versions": versions()}
        if trainer.is_global_zero:
            save_json(record["versions"], Path(cfg.paths.output_dir) / "versions.json")
        for logger in trainer.loggers:
            logger.log_hyperparams(record)
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            rank_zero_info(f"best checkpoint: {best}")
        return {"metrics": metrics, "best_ckpt": best, "output_dir": cfg.paths.output_dir}
    finally:
        finish_loggers(loggers)
        rank_zero_info(f"output dir: {cfg.paths.output_dir}")

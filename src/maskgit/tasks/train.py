"""Training: compose -> check data -> instantiate -> fit. Loggers are always closed.

The model config decides the stage: maskgit.maskgit.MaskGIT (stage 2) reads VQGAN tokens,
maskgit.vqgan_training.VQGANTraining (stage 1, `experiment=vqgan`) reads images.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from maskgit.data.datamodule import CatFaceDataModule
from maskgit.errors import ConfigError
from maskgit.maskgit import MaskGIT
from maskgit.utils.checkpoint_io import AtomicCheckpointIO
from maskgit.utils.config import print_config_tree
from maskgit.utils.loggers import build_loggers, finish_loggers

log = logging.getLogger(__name__)
# The frozen VQGAN is in eval mode on purpose.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")


def instantiate_callbacks(cfg: DictConfig | None) -> list[L.Callback]:
    return [instantiate(c) for c in (cfg or {}).values()
            if isinstance(c, DictConfig) and "_target_" in c]


def check_stage(model: L.LightningModule, datamodule: CatFaceDataModule, trainer_cfg: DictConfig) -> None:
    """The data must be what the model reads; manual optimisation takes no trainer clipping."""
    kind = getattr(model, "input_kind", "tokens")
    if datamodule.serve != kind:
        what = "trains the VQGAN (stage 1)" if kind == "images" else "trains the transformer on VQGAN tokens"
        raise ConfigError(f"{type(model).__name__} {what} and needs data.serve={kind}, but the data "
                          f"serves {datamodule.serve} (use experiment=vqgan for stage 1)")
    if not model.automatic_optimization:
        if trainer_cfg.get("gradient_clip_val"):
            raise ConfigError(f"{type(model).__name__} steps its optimisers itself: set "
                              "trainer.gradient_clip_val=null and clip with model.optimizer.grad_clip")
        if trainer_cfg.get("accumulate_grad_batches", 1) != 1:
            raise ConfigError(f"{type(model).__name__} steps its optimisers itself: "
                              "trainer.accumulate_grad_batches must be 1")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train the configured model; returns the final callback metrics and the best checkpoint path."""
    print_config_tree(cfg, save_to=cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: CatFaceDataModule = instantiate(cfg.data)
    datamodule.check()  # a broken data set fails here, before any model is built
    model: MaskGIT | L.LightningModule = instantiate(cfg.model)
    check_stage(model, datamodule, cfg.trainer)
    if datamodule.serve == "tokens":
        datamodule.use_tokenizer(model.vqgan)
    loggers = build_loggers(cfg.get("logger"))
    try:
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=instantiate_callbacks(cfg.get("callbacks")),
                                         logger=loggers or False, plugins=[AtomicCheckpointIO()])
        for logger in trainer.loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        log.info("best checkpoint: %s", best)
        return {"metrics": metrics, "best_ckpt": best, "output_dir": cfg.paths.output_dir}
    finally:
        finish_loggers(loggers)
        log.info("output dir: %s", cfg.paths.output_dir)

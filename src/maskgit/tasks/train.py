"""Stage-2 training: compose -> check data -> instantiate -> fit. Loggers are always closed."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from maskgit.data.datamodule import CatFaceDataModule
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


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train the transformer; returns the final callback metrics and the best checkpoint path."""
    print_config_tree(cfg, save_to=cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: CatFaceDataModule = instantiate(cfg.data)
    datamodule.check()  # a broken data set fails here, before any model is built
    model: MaskGIT = instantiate(cfg.model)
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

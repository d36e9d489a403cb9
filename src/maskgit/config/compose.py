"""The repository's Hydra configs, for code that runs outside train.py / eval.py (benchmarks, hints)."""

from __future__ import annotations

from maskgit.config import CONF_DIR


def model_configs(vqgan: str, model: str) -> tuple[dict, dict]:
    """The composed `vqgan` and `model` groups, exactly as train.py would see them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("train", overrides=[f"vqgan={vqgan}", f"model={model}"])
    return (OmegaConf.to_container(cfg.vqgan, resolve=True),
            OmegaConf.to_container(cfg.model, resolve=True))

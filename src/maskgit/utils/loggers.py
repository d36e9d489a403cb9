"""Build the configured loggers; wandb falls back to offline mode when no credentials exist."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

log = logging.getLogger(__name__)


# Set once a wandb run of this process went offline for lack of credentials: later runs (the
# quickstart's next stage, multirun jobs) go offline too, without asking wandb again.
_OFFLINE_FALLBACK: set[bool] = set()


def wandb_has_credentials() -> bool:
    """True when wandb can log online: an API key in the environment, settings or .netrc."""
    import wandb

    return bool(wandb.login(prompt=False, verify=False))


def library_files_in(cache_dir: str | os.PathLike) -> None:
    """wandb's artifact staging files (~/.local/share/wandb) and debug logs go under the project's
    cache folder, unless the user chose other folders: a run writes nothing outside its run folder
    and the caches."""
    for variable in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        os.environ.setdefault(variable, str(Path(cache_dir) / "wandb"))


def build_loggers(cfg: DictConfig | None, cache_dir: str | os.PathLike | None = None) -> list[Logger]:
    """The configured loggers; with `cache_dir`, the libraries' own files go there (library_files_in)."""
    if cache_dir is not None:
        library_files_in(cache_dir)
    loggers: list[Logger] = []
    for name, conf in (cfg or {}).items():
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            continue
        kwargs: dict[str, Any] = {}
        if (conf._target_.endswith("WandbLogger") and not conf.get("offline", False)
                and (_OFFLINE_FALLBACK or ("WANDB_MODE" not in os.environ and not wandb_has_credentials()))):
            # wandb.init's mode only: Lightning's `offline=True` would set WANDB_MODE=dryrun, and every
            # later run of this process would warn that changed wandb variables are ignored
            kwargs.update(mode="offline")
            _OFFLINE_FALLBACK.add(True)
            rank_zero_info(f"wandb: no credentials found, logging offline to {conf.save_dir}/wandb "
                           "(upload later with `wandb sync <that folder>/offline-run-*`)")
        log.debug("instantiating logger %s", name)
        loggers.append(instantiate(conf, **kwargs))
    return loggers


class QuietWandbLogger(WandbLogger):
    """Lightning's WandbLogger without the `anonymous=None` it always hands wandb.init, which makes
    wandb warn on every run that the setting has no effect (conf/logger/wandb.yaml uses this one)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]


def finish_loggers(loggers: list[Logger]) -> None:
    """Close every run, also after a failure: multirun needs each wandb run finished."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            if wandb.run is not None:
                wandb.finish()
        else:
            logger.finalize("success")

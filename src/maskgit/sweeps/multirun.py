"""What a job of a Hydra multirun (`python eval.py -m ...`) does differently from a single run."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, open_dict

from maskgit.errors import ConfigError


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def device_count(devices, accelerator: str | None) -> int:
    """How many processes Lightning would start for `trainer.devices` (auto/-1: all visible GPUs)."""
    if isinstance(devices, list | tuple | ListConfig):
        return len(devices)
    text = str(devices).strip()
    if text in ("auto", "-1"):  # Lightning rejects -1 on CPU itself
        import torch

        return 1 if accelerator == "cpu" else max(torch.cuda.device_count(), 1)
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    return int(text) if text.lstrip("-").isdigit() else 1


def refuse_ddp(cfg: DictConfig) -> None:
    """Several devices per point would make every DDP child process run the whole sweep again."""
    trainer = cfg.get("trainer") or {}
    n = device_count(trainer.get("devices", 1), trainer.get("accelerator"))
    nodes = int(trainer.get("num_nodes", 1) or 1)
    if n > 1 or nodes > 1:
        raise ConfigError(
            f"trainer.devices={trainer.get('devices')}" + (f" num_nodes={nodes}" if nodes > 1 else "")
            + " in a multirun (-m): DDP would "
            "start the whole sweep again in each child process; sweep with one device per job instead "
            "(trainer.devices=1 with hydra/launcher=gpus: one GPU per point; on a CPU "
            "hydra/launcher=parallel hydra.launcher.n_jobs=N; see docs/scaling.md), "
            "or run one point without -m on several devices")


def name_wandb_run(cfg: DictConfig) -> None:
    """Each point its own wandb run, grouped by the sweep folder's name, named by job number and point."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not isinstance(wandb_cfg, DictConfig):
        return
    hydra = HydraConfig.get()
    with open_dict(wandb_cfg):
        if not wandb_cfg.get("group"):
            wandb_cfg.group = Path(hydra.sweep.dir).name
        if not wandb_cfg.get("name"):
            stop = f"-s{cfg.sweet_spot}" if int(cfg.sweet_spot) >= 0 else ""
            wandb_cfg.name = f"{hydra.job.num}-{cfg.mask_func}-T{cfg.total_iter}{stop}"


def prepare_multirun_job(cfg: DictConfig) -> bool:
    """In a multirun: refuse DDP and name the wandb run. Returns whether this is a multirun job."""
    if not in_multirun():
        return False
    refuse_ddp(cfg)
    name_wandb_run(cfg)
    return True


class SweepHydraConfig(Callback):
    """Make `${hydra:...}` resolvable while the sweeper and launcher run (`hydra.callbacks` in
    conf/hydra/default.yaml): Hydra sets HydraConfig only per job, but the sweep folder
    `hydra.sweep.dir` is resolved before any job, through `paths.root_dir: ${hydra:runtime.cwd}`."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)

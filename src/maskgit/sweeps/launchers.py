"""Checks a multirun makes once, in the main process, before its launcher starts any job.

A launcher that spreads points over GPUs, workers or nodes (`hydra/launcher=gpus`: Ray;
`slurm`, `slurm_local`: submitit) would otherwise fail in every job, or worse, hang: Ray waits
forever for a GPU the machine does not have. Each problem is one line and exit code 2.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from maskgit.errors import ConfigError, exit_on_user_error
from maskgit.sweeps.multirun import refuse_ddp
from maskgit.sweeps.shared_storage import local_only

INSTALL = {"ray": 'pip install -e ".[ray]"', "submitit": 'pip install -e ".[slurm]"'}
PLUGINS = {"ray": "hydra_plugins.hydra_ray_launcher", "submitit": "hydra_plugins.hydra_submitit_launcher"}


def engine(launcher: DictConfig) -> str | None:
    """"ray", "slurm", "submitit_local" or None (Hydra's own, joblib) from the launcher's class."""
    target = str(launcher.get("_target_", ""))
    if target.endswith("RayLauncher"):
        return "ray"
    if target.endswith("SlurmLauncher"):
        return "slurm"
    return "submitit_local" if "submitit" in target else None


def require(package: str, choice: str) -> None:
    for module in (package, PLUGINS[package]):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"hydra/launcher={choice} needs {package} and its Hydra launcher, which are "
                              f"not installed: {INSTALL[package]}") from None


def visible_gpus() -> int:
    import torch  # only for a GPU launcher: the other sweeps start without it

    return torch.cuda.device_count()


def check_gpus(ray: DictConfig, choice: str) -> bool:
    """Each job's GPUs fit the local machine; returns whether Ray is a cluster (an address is set)."""
    init, remote = ray.get("init") or {}, ray.get("remote") or {}
    per_job = float(remote.get("num_gpus") or 0)
    if init.get("address") not in (None, "", "local"):
        return True  # the cluster's GPUs are the cluster's business; Ray reports what it lacks
    given = init.get("num_gpus")
    have = visible_gpus() if given is None else float(given)
    if per_job > have:
        where = "told Ray it has" if given is not None else "has"
        raise ConfigError(
            f"hydra/launcher={choice} gives each point {per_job:g} GPU(s) but this machine {where} {have:g}"
            + ("; on a CPU sweep with hydra/launcher=parallel" if have == 0 else "")
            + " (hydra.launcher.ray.remote.num_gpus: GPUs per point; hydra.launcher.ray.init.num_gpus: "
            "GPUs Ray may hand out)")
    return False


def check_ckpt(config: DictConfig, choice: str) -> None:
    """Every job loads ckpt_path: one that cannot be read fails here once, not in each worker."""
    if "ckpt_path" not in config or OmegaConf.is_missing(config, "ckpt_path") or not config.ckpt_path:
        return
    path = Path(str(config.ckpt_path))
    if not path.is_file() or not os.access(path, os.R_OK):
        why = "does not exist" if not path.exists() else "is not a readable file"
        raise ConfigError(f"ckpt_path={path} {why}: every hydra/launcher={choice} worker loads it")


def check_shared(config: DictConfig, choice: str) -> None:
    """Points on other nodes share caches, point store and sweep folder through the file system."""
    if config.paths.get("shared_storage"):
        return
    paths = {"paths.cache_dir": config.paths.cache_dir, "paths.log_dir": config.paths.log_dir}
    if "ckpt_path" in config and not OmegaConf.is_missing(config, "ckpt_path") and config.ckpt_path:
        paths["ckpt_path"] = config.ckpt_path
    for name, value in paths.items():
        if kind := local_only(str(value)):
            raise ConfigError(
                f"hydra/launcher={choice} runs points on other nodes, but {name}={value} is on this "
                f"machine's own {kind} file system: put paths.cache_dir, paths.log_dir and ckpt_path on "
                "shared storage (NFS, Lustre, ...), or set paths.shared_storage=true if they are shared")


def check_launcher(config: DictConfig) -> None:
    """All the checks above, for the launcher `config.hydra.launcher` names."""
    if config.get("task_name") == "eval":
        refuse_ddp(config)  # once here, not in every job
    launcher = config.hydra.launcher
    choice = str(config.hydra.runtime.choices.get("hydra/launcher") or "basic")
    kind = engine(launcher)
    if kind is None:
        return
    require("ray" if kind == "ray" else "submitit", choice)
    cluster = check_gpus(launcher.ray, choice) if kind == "ray" else kind == "slurm"
    check_ckpt(config, choice)
    if cluster:
        check_shared(config, choice)
    if kind == "ray":
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # each job's lines, not "[repeated 2x]"


class CheckLauncher(Callback):
    """`hydra.callbacks` (conf/hydra/default.yaml): `check_launcher` before any job starts."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(check_launcher)(config)

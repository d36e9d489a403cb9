"""AdamW with decay / no-decay groups and a per-step linear-warmup + cosine schedule.

The optimiser and the schedule are Hydra nodes with `_partial_: true` (conf/model/*.yaml): the
LightningModules receive them as partials and call the optimiser on their parameter groups and the
schedule on the optimiser and the run's number of steps. Their values are set in YAML only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def param_groups(model: nn.Module, weight_decay: float | None = None) -> list[dict]:
    """Decay only the weight matrices of Linear layers; never biases, norms or embeddings.

    (nanoGPT decays every >=2-D tensor, but here the token embedding, the positional embedding
    and the output `bias` table are 2-D too and must not be decayed.)
    `weight_decay=None`: the decay group takes the optimiser's own `weight_decay` (the value the
    optimiser node sets); the other group always has 0.
    """
    decay = {f"{mn}.weight" if mn else "weight"
             for mn, m in model.named_modules() if isinstance(m, nn.Linear)}
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    decayed: dict[str, Any] = {"params": [p for n, p in params.items() if n in decay]}
    if weight_decay is not None:
        decayed["weight_decay"] = weight_decay
    return [decayed, {"params": [p for n, p in params.items() if n not in decay], "weight_decay": 0.0}]


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: float, *, warmup_steps: int,
                  min_lr_ratio: float) -> LRScheduler:
    """Linear warmup to the base lr over `warmup_steps`, then cosine down to min_lr_ratio * lr at
    `total_steps`. The target of the `model.scheduler` node; `total_steps` comes from the trainer
    (an endless run, total_steps inf, decays over 10 * warmup_steps)."""
    total_steps = int(total_steps) if math.isfinite(total_steps) else int(warmup_steps) * 10
    total_steps = max(total_steps, 1)
    warmup_steps = min(int(warmup_steps), total_steps - 1)
    base_lr = optimizer.param_groups[0]["lr"]
    cosine = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1),
                               eta_min=base_lr * min_lr_ratio)
    if warmup_steps <= 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


# -- partials and their config ----------------------------------------------------------------------
Spec = Callable[..., Any] | Mapping[str, Any]


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def partial_config(factory: Callable[..., Any]) -> dict[str, Any] | None:
    """The `_target_` / `_partial_` config that rebuilds the partial `factory`: plain values only, so
    checkpoints' hyper-parameters load with weights_only=True. None for a callable that cannot be
    named (a lambda, a local function)."""
    func, args, keywords = factory, (), {}
    if isinstance(factory, functools.partial):
        func, args, keywords = factory.func, factory.args, factory.keywords or {}
    module, name = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or not name or "<" in name:
        return None
    config: dict[str, Any] = {"_target_": f"{module}.{name}", "_partial_": True}
    if args:
        config["_args_"] = [_plain(a) for a in args]
    config.update({k: _plain(v) for k, v in keywords.items()})
    return config


# Modules that moved, as checkpoints written before the move name them in their hyper-parameters.
MOVED_MODULES = {"maskgit.optim.": "maskgit.training.optim."}


def moved_target(target: str) -> str:
    """`target` under the module's current name (a checkpoint's record may use an older one)."""
    for old, new in MOVED_MODULES.items():
        if target.startswith(old):
            return new + target[len(old):]
    return target


def node_config(spec: Spec | None, what: str,
                legacy: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The config of a `_partial_` node given as a partial (Hydra's recursive instantiate) or as its
    config (a checkpoint's record); None stays None. `legacy`: how to read a mapping without
    `_target_`, the record of a checkpoint written before the node had one: its `_target_` and
    the values such records could leave out."""
    if spec is None:
        return None
    if callable(spec):
        return partial_config(spec)
    if not isinstance(spec, Mapping | DictConfig):
        raise TypeError(f"{what} must be a partial or its config (a mapping with _target_), "
                        f"got {type(spec).__name__}")
    node = {k: _plain(v) for k, v in spec.items()}
    if isinstance(node.get("_target_"), str):
        node["_target_"] = moved_target(node["_target_"])
    if "_target_" not in node:
        if legacy is None:
            raise TypeError(f"{what} config has no _target_")
        node = {**legacy, **node}
    return {**node, "_partial_": True}


def as_partial(spec: Spec) -> Callable[..., Any]:
    """A partial node's callable: the partial itself, or built from its config."""
    if callable(spec):
        return spec
    return instantiate({**spec, "_partial_": True, "_convert_": "all"})

"""AdamW with decay / no-decay groups and a per-step linear-warmup + cosine schedule."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay only the weight matrices of Linear layers; never biases, norms or embeddings.

    (nanoGPT decays every >=2-D tensor, but here the token embedding, the positional embedding
    and the output `bias` table are 2-D too and must not be decayed.)
    """
    decay = {f"{mn}.weight" if mn else "weight"
             for mn, m in model.named_modules() if isinstance(m, nn.Linear)}
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    return [
        {"params": [p for n, p in params.items() if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in params.items() if n not in decay], "weight_decay": 0.0},
    ]


def build_adamw(model: nn.Module, lr: float, weight_decay: float = 0.01,
                betas: Sequence[float] = (0.9, 0.96), eps: float = 1e-8,
                fused: bool | None = None) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps,
                             fused=fused)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_lr_ratio: float = 0.0) -> LRScheduler:
    """Linear warmup to the base lr over `warmup_steps`, then cosine down to min_lr_ratio * lr."""
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(int(warmup_steps), total_steps - 1)
    base_lr = optimizer.param_groups[0]["lr"]
    cosine = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1),
                               eta_min=base_lr * min_lr_ratio)
    if warmup_steps <= 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])

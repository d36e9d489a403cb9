"""Codebook health over a whole validation epoch: usage, perplexity and dead codes."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class CodebookUsage(Metric):
    """A histogram of code indices, summed over batches and DDP processes.

    `compute()` gives `usage` (fraction of codes used at least once), `perplexity` (exp of the
    histogram's entropy: 1 when one code takes everything, K when all K codes are equally used) and
    `dead_codes` (how many codes were never used).
    """

    full_state_update = False

    def __init__(self, num_codes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_codes = num_codes
        self.add_state("counts", default=torch.zeros(num_codes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, indices: Tensor) -> None:
        self.counts += torch.bincount(indices.flatten().long(), minlength=self.num_codes)

    def compute(self) -> dict[str, Tensor]:
        counts = self.counts.double()
        p = counts / counts.sum().clamp(min=1)
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        used = (self.counts > 0).sum()
        return {"usage": used.float() / self.num_codes, "perplexity": entropy.exp().float(),
                "dead_codes": (self.num_codes - used).float()}

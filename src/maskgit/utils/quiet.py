"""Keep the terminal to what a user acts on: drop the libraries' banners, tips and known warnings."""

from __future__ import annotations

import logging
import re
import warnings

# Lightning INFO lines that say nothing the run's config does not already say.
_BANNERS = re.compile(
    r"^(GPU available|TPU available|HPU available|💡 Tip|Trainer already configured with model summary"
    r"|Loading `train_dataloader` to estimate|You are using a CUDA device .* Tensor Cores)")
_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # lightning's own call into torch
    r".*does not have many workers which may be a bottleneck.*",  # tokens are in memory (num_workers: 0)
    r".*module\(s\) in eval mode.*",  # the frozen VQGAN, on purpose
)


class _DropBanners(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _BANNERS.match(record.getMessage())


def quiet_libraries() -> None:
    """Install the filters (idempotent); call at the start of a task."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropBanners) for f in logger.filters):
            logger.addFilter(_DropBanners())
    for pattern in _WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)

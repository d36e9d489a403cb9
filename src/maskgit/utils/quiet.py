"""Keep the terminal to what a user acts on: drop the libraries' banners, tips and known warnings."""

from __future__ import annotations

import logging
import re
import warnings

# Lightning INFO lines that say nothing the run's config does not already say.
_BANNERS = re.compile(
    r"^(GPU available|TPU available|HPU available|💡 Tip|Trainer already configured with model summary"
    r"|Loading `train_dataloader` to estimate|You are using a CUDA device .* Tensor Cores"
    r"|(\[rank: \d+\] )?Seed set to|Initializing distributed|-{20,}\ndistributed_backend=)")
_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # lightning's own call into torch
    r".*does not have many workers which may be a bottleneck.*",  # tokens are in memory (num_workers: 0)
    r".*module\(s\) in eval mode.*",  # the frozen VQGAN, on purpose
)


class _DropBanners(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _BANNERS.match(record.getMessage())


def quiet_libraries() -> None:
    """Install the filters (idempotent); call at the start of a task.

    The `lightning` package gives its logger a console handler of its own; under Hydra, whose root
    logger already prints (and writes the run's log file), every Lightning line came out twice."""
    root, lightning = logging.getLogger(), logging.getLogger("lightning")
    if root.handlers:
        for handler in list(lightning.handlers):
            if type(handler) is logging.StreamHandler:
                lightning.removeHandler(handler)

    # On the handlers: a logger's own filters do not see what its children (lightning.fabric.utilities.seed,
    # ...) propagate to it.
    for name in ("", "lightning", "lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _DropBanners) for f in handler.filters):
                handler.addFilter(_DropBanners())
    for pattern in _WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)

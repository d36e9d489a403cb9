"""Lightning's rich progress bar with one more line: every optimiser step of the run, with its ETA."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class RunProgressBar(RichProgressBar):
    """Per-epoch bars as Lightning draws them, plus `all N steps` over the whole run (the ETA of the
    stage), and an epoch label without the `Epoch 0/-2` of a run bounded by max_steps only."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._run_task = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        total = trainer.estimated_stepping_batches
        if self.progress is not None and math.isfinite(total):
            self._run_task = self._add_task(int(total), f"all {int(total):,} steps")
            self._update(self._run_task, trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._run_task is not None:
            self._update(self._run_task, trainer.global_step)

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        if max_epochs is None or max_epochs < 1:
            return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"
        return super()._get_train_description(current_epoch)

    def _reset_progress_bar_ids(self) -> None:
        super()._reset_progress_bar_ids()
        self._run_task = None

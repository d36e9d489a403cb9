"""Lightning checkpoints written atomically: a killed run never leaves a truncated .ckpt."""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from maskgit.utils.atomic import save_torch


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH,
                        storage_options: Any | None = None) -> None:
        save_torch(checkpoint, path)

"""Lightning checkpoints written atomically and sealed: a killed run never leaves a truncated .ckpt that
looks whole, and bytes changed later are found before the checkpoint is used."""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from maskgit.utils.integrity import unseal, write_sealed


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH,
                        storage_options: Any | None = None) -> None:
        write_sealed(path, lambda tmp: torch.save(checkpoint, tmp))

    def remove_checkpoint(self, path: _PATH) -> None:
        super().remove_checkpoint(path)
        unseal(path)

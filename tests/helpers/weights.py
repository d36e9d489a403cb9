"""A test callback: each rank writes the sha256 of its model's weights when training ends."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L


class WeightsDigest(L.Callback):
    def __init__(self, out: str):
        self.out = Path(out)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        h = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.txt").write_text(
            f"{h.hexdigest()} {trainer.global_step} {trainer.world_size}\n")

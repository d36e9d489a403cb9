"""Checkpoints carry the random generators' state, so a resumed run draws what an uninterrupted one
would have drawn (the data order, the masks of masked token modeling, dropout) and ends identical.

Lightning restores the weights, optimiser, schedule and loop counters but starts the generators from
the seed again; without this a resumed run is statistically equivalent, not equal.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import torch


class RandomStateCheckpoint(L.Callback):
    """Saves torch's CPU (and CUDA) and Python's generator states with every checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        random.setstate((3, tuple(state_dict["python"]), None))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])

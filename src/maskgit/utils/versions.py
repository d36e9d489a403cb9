"""The software a run used, recorded with its results (reproducibility holds for the same versions)."""

from __future__ import annotations

import importlib.metadata
import os
import platform

PACKAGES = ("maskgit", "torch", "torchvision", "lightning", "torchmetrics", "torch-fidelity", "hydra-core",
            "wandb")


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    import torch

    found["torch"] = torch.__version__  # with its build: +cu130, +cpu
    return {**found, "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": str(os.cpu_count()), "cuda": str(torch.version.cuda)}

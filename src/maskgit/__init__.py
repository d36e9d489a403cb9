"""MaskGIT image inpainting experiments: frozen VQGAN + bidirectional transformer."""

import os
import secrets

from omegaconf import OmegaConf

__version__ = "0.1.0"
__all__ = ["Inpainter"]


def __getattr__(name: str):
    """`from maskgit import Inpainter` loads torch and the model code only when it is asked for: the
    command lines import this package before they check their arguments."""
    if name == "Inpainter":
        from maskgit.inpainter import Inpainter

        return Inpainter
    raise AttributeError(f"module 'maskgit' has no attribute {name!r}")


def _run_id() -> str:
    """A suffix that keeps run folders apart when two runs start in the same second (two terminals,
    a job array): this process's id and 16 random bits. Cached, so one run resolves it once."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


if not OmegaConf.has_resolver("run_id"):
    OmegaConf.register_new_resolver("run_id", _run_id, use_cache=True)

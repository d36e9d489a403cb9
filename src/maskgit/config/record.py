"""Keep the composed config with the run, as a readable tree (the terminal only gets its path)."""

from __future__ import annotations

import logging
from pathlib import Path

import rich
import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from maskgit.utils.atomic import atomic_path

log = logging.getLogger(__name__)


@rank_zero_only
def save_config_tree(cfg: DictConfig, save_to: str | Path) -> Path:
    """Each top-level group as a branch, its YAML as the leaf, in <save_to>/config_tree.log.

    Hydra also keeps the exact config in <run>/.hydra/config.yaml; this copy is for reading."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key, value in cfg.items():
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text, "yaml"))
    path = Path(save_to) / "config_tree.log"
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        rich.print(tree, file=fh)
    log.debug("config: %s", path)
    return path

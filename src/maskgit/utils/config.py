"""Config helpers: print the composed config as a tree and keep a copy with the run."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from maskgit.utils.atomic import atomic_path


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_to: str | Path | None = None) -> None:
    """Each top-level group as a branch, its YAML as the leaf; saved as config_tree.log."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key, value in cfg.items():
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        with atomic_path(Path(save_to) / "config_tree.log") as tmp, open(tmp, "w") as fh:
            rich.print(tree, file=fh)

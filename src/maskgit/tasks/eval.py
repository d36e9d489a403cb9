"""eval.py's tasks: inpaint (the test split), generate (unconditional samples), baselines (classical
methods and the VQGAN ceiling in the same metrics). Each is a plug-in on the one runner
(`maskgit.tasks.runner`), which loads, runs and finishes them all the same way."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from maskgit.settings import check_settings
from maskgit.tasks.baselines import Baselines
from maskgit.tasks.generate import Generate
from maskgit.tasks.inpaint import Inpaint
from maskgit.tasks.runner import EvalTask, run_task

TASKS: dict[str, type[EvalTask]] = {"inpaint": Inpaint, "generate": Generate, "baselines": Baselines}


def evaluate(cfg: DictConfig, task: EvalTask | None = None) -> dict[str, Any]:
    """Run `cfg.task` (or `task`); returns the metrics file's content ({} in DDP processes but rank 0)."""
    check_settings(cfg)  # task= among them
    return run_task(cfg, task or TASKS[cfg.get("task", "inpaint")]())

"""eval.py's tasks: inpaint (the test split), generate (unconditional samples), baselines (classical
methods and the VQGAN ceiling in the same metrics). Each is a plug-in on the one runner
(`maskgit.tasks.runner`), which loads, runs and finishes them all the same way."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from maskgit.config.settings import check_settings
from maskgit.decoding.settings import SweetSpotBeyondSteps
from maskgit.sweeps.multirun import in_multirun
from maskgit.tasks.baselines import Baselines
from maskgit.tasks.generate import Generate
from maskgit.tasks.inpaint import Inpaint
from maskgit.tasks.runner import EvalTask, not_applicable, run_task

TASKS: dict[str, type[EvalTask]] = {"inpaint": Inpaint, "generate": Generate, "baselines": Baselines}


def evaluate(cfg: DictConfig, task: EvalTask | None = None) -> dict[str, Any]:
    """Run `cfg.task` (or `task`); returns the metrics file's content ({} in DDP processes but rank 0)."""
    try:
        check_settings(cfg)  # task= among them
    except SweetSpotBeyondSteps as err:
        if not in_multirun():  # a single run asked for something that does not exist
            raise
        return not_applicable(cfg, str(err))  # a grid's corner (total_iter=1..28 sweet_spot=1..28)
    return run_task(cfg, task or TASKS[cfg.get("task", "inpaint")]())

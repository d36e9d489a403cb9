"""Where and when a sweep point ran: recorded in its metrics.json, so a sweep spread over GPUs,
workers and nodes can be checked (one point per GPU at a time) and its points found again."""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any


def _ray_gpu_ids() -> list[Any] | None:
    """The GPU ids Ray gave this task (a Ray worker), or None outside Ray."""
    ray = sys.modules.get("ray")  # never imported here: only a Ray worker has it loaded
    if ray is None or not ray.is_initialized():
        return None
    try:
        return [str(i) for i in ray.get_gpu_ids()]
    except Exception:  # noqa: BLE001 - a driver, or a Ray without the call: nothing to record
        return None


def placement() -> dict[str, Any]:
    """This process's GPU assignment, host and pid."""
    return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "ray_gpu_ids": _ray_gpu_ids(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "submitit_job_id": os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
            "node": socket.gethostname(), "pid": os.getpid()}


def wall_clock() -> float:
    """Seconds since the epoch: comparable across the processes of one machine (and synced nodes)."""
    return round(time.time(), 3)

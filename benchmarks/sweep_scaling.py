"""gpu_check's `sweep` section: a small FID sweep through `hydra/launcher=gpus` (Ray, one point per
GPU) with 1 GPU and with every visible GPU, as points per minute: the speed-up of filling a machine.

The checkpoint is the configured sizes' transformer after 2 training steps (32 images) by train.py
(timing does not depend on the weights). Caches (tokens, FID reference) are built by a warm-up point first, so
both sweeps time the points alone; each sweep has its own log folder, so no point is reused.
`--tiny`: on the CPU, Ray is told there are 2 GPUs (the same placement as on real hardware).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = {"tiny": ["mask_func=linear,cosine", "total_iter=2"],
        "full": ["mask_func=linear,cosine,square", "total_iter=2..5"]}


def _run(script: str, args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed: {proc.stderr[-1500:]}")
    return time.perf_counter() - start


def _checkpoint(work: Path, data: list[str], vqgan: str, model: str, vqgan_ckpt: Path, tiny: bool,
                env: dict[str, str]) -> Path:
    out = work / "train"
    _run("train.py", [*data, f"vqgan={vqgan}", f"vqgan.ckpt_path={vqgan_ckpt}", f"model={model}",
                      "data.limit.train=32", "data.limit.val=16", "data.batch_size=16",
                      "trainer.max_epochs=1", "logger=none", "callbacks.model_summary=null",
                      "trainer.enable_progress_bar=false", f"hydra.run.dir={out}",
                      *(["trainer=cpu"] if tiny else ["trainer=gpu"])], work, env)
    return out / "checkpoints" / "last.ckpt"


def sweep_section(work: Path, data_root: str | None, vqgan: str, model: str, vqgan_ckpt: Path,
                  tiny: bool, gpus: int) -> dict:
    """Points per minute with 1 GPU and with `gpus` (2 fake ones with `tiny`)."""
    try:
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
    except ImportError:
        return {"skipped": 'Ray is not installed: pip install -e ".[ray]"'}
    counts = [1, 2] if tiny else sorted({1, gpus})
    if not tiny and gpus < 1:
        return {"skipped": "no GPU visible"}
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "MASKGIT_PROGRESS": "0",
           "MASKGIT_CACHE_DIR": str(work / "cache"), "RAY_AUTH_MODE": "disabled"}
    data = [f"data.root={data_root}"] if data_root else ["data=synthetic"]
    ckpt = _checkpoint(work, data, vqgan, model, vqgan_ckpt, tiny, env)
    common = ["-m", f"ckpt_path={ckpt}", *data, "pictures.num_images=0", "pictures.grid_images=0",
              "logger=none", "trainer.enable_progress_bar=false", "hydra/launcher=gpus",
              f"hydra.launcher.ray.init._temp_dir={work / 'ray'}"]
    common += (["trainer=cpu", "data.limit.test=8", "metrics.fid.enabled=false"] if tiny
               else ["trainer=gpu", "data.limit.test=256"])
    grid = GRID["tiny" if tiny else "full"]
    _run("eval.py", [*common, "hydra.launcher.ray.init.num_gpus=1", "mask_func=cosine", "total_iter=3",
                     f"paths.log_dir={work / 'warmup'}"], work, env)  # builds the caches
    report: dict = {"grid": " ".join(grid), "gpus": counts}
    for n in counts:
        logs = work / f"logs_{n}"
        seconds = _run("eval.py", [*common, f"hydra.launcher.ray.init.num_gpus={n}", *grid,
                                   f"paths.log_dir={logs}"], work, env)
        points = [json.loads(p.read_text()) for p in logs.glob("eval/multiruns/*/*/metrics.json")]
        done = [p for p in points if not p.get("skipped")]
        ids = {",".join(p["placement"]["ray_gpu_ids"] or []) for p in done}
        report[f"{n}_gpu"] = {"points": len(done), "seconds": seconds,
                              "points_per_min": 60 * len(done) / seconds, "gpu_ids": sorted(ids)}
    if len(counts) == 2:
        report["speedup"] = report[f"{counts[1]}_gpu"]["points_per_min"] / report["1_gpu"]["points_per_min"]
    return report

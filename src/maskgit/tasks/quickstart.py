"""The whole pipeline in one command: stage-1 VQGAN -> stage-2 transformer on its tokens -> inpainting.

Each stage is the config a user would run alone (`train.py experiment=quickstart_vqgan`,
`train.py experiment=quickstart vqgan.ckpt_path=...`, `eval.py ckpt_path=...`), composed here with
its output folder inside this run's folder and the previous stage's checkpoint filled in.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from maskgit.config.settings import check_settings
from maskgit.errors import ConfigError, MaskGITError
from maskgit.utils.atomic import save_json

STAGES = ("vqgan", "transformer", "eval", "baselines")


def compose_stage(conf_dir: Path, name: str, overrides: list[str], cfg: DictConfig, stage: str) -> DictConfig:
    """`name` (train/eval) with `overrides`, writing into <run>/<stage> and sharing this run's caches.

    Outside a Hydra app the config dir is initialised for this compose only."""
    if GlobalHydra.instance().is_initialized():  # inside quickstart.py's Hydra app: the same conf/
        stage_cfg = compose(name, overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            stage_cfg = compose(name, overrides=overrides)
    with open_dict(stage_cfg):
        for key in ("root_dir", "log_dir", "cache_dir"):
            stage_cfg.paths[key] = str(cfg.paths[key])
        stage_cfg.paths.output_dir = str(Path(cfg.paths.output_dir) / stage)
    Path(stage_cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    return stage_cfg


def stage_overrides(cfg: DictConfig, stage: str) -> list[str]:
    """How the stage runs (`processes`, the batch split over them), then `common`, the stage's own
    overrides and, with `reduced`, its smoke-run overrides (later ones win)."""
    n = cfg.processes
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"processes must be a positive integer, got {n!r}")
    launch = ["trainer=cpu"] if n == 1 else ["trainer=ddp", "trainer.accelerator=cpu", f"trainer.devices={n}"]
    batch = cfg.batch_size.get(stage)
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < n or batch % n:
            raise ConfigError(f"batch_size.{stage}={batch!r} does not split evenly over processes={n}")
        launch.append(f"data.batch_size={batch // n}")
    reduced = list(cfg.reduced_overrides[stage]) if cfg.reduced else []
    return [*launch, *cfg.common, *cfg.stages[stage], *reduced]


def run_quickstart(cfg: DictConfig, conf_dir: Path) -> dict[str, Any]:
    """Run the four stages; returns (and writes as summary.json) times, metrics and outputs."""
    check_settings(cfg)  # processes, fid, ...: types and ranges, first
    import torch
    from lightning.pytorch.utilities import rank_zero_info

    from maskgit.data.images import read_image
    from maskgit.sweeps.hole_curve import verdict
    from maskgit.tasks.baselines import Baselines, write_table
    from maskgit.tasks.eval import evaluate
    from maskgit.tasks.train import train
    from maskgit.utils.quiet import quiet_libraries

    quiet_libraries()
    for stage, name in (("vqgan", "train"), ("transformer", "train"), ("eval", "eval")):  # before training
        check_settings(compose_stage(conf_dir, name, stage_overrides(cfg, stage), cfg, stage))

    out = Path(cfg.paths.output_dir)
    summary: dict[str, Any] = {"reduced": bool(cfg.reduced), "seconds": {}, "stages": {}}
    start = time.perf_counter()

    def timed(stage: str, fn, stage_cfg: DictConfig) -> dict[str, Any]:
        rank_zero_info(f"quickstart: stage {STAGES.index(stage) + 1}/{len(STAGES)} ({stage}) -> "
                       f"{stage_cfg.paths.output_dir}")
        t0 = time.perf_counter()
        result = fn(stage_cfg)
        summary["seconds"][stage] = round(time.perf_counter() - t0, 1)
        return result

    vqgan_cfg = compose_stage(conf_dir, "train", stage_overrides(cfg, "vqgan"), cfg, "vqgan")
    vqgan = timed("vqgan", train, vqgan_cfg)
    vqgan_ckpt = _checkpoint(vqgan, "vqgan")
    summary["stages"]["vqgan"] = {"checkpoint": vqgan_ckpt, "metrics": _val_metrics(vqgan)}

    transformer_cfg = compose_stage(conf_dir, "train", stage_overrides(cfg, "transformer"), cfg,
                                    "transformer")
    with open_dict(transformer_cfg):
        transformer_cfg.vqgan.ckpt_path = vqgan_ckpt
    transformer = timed("transformer", train, transformer_cfg)
    ckpt = _checkpoint(transformer, "transformer")
    summary["stages"]["transformer"] = {"checkpoint": ckpt, "metrics": _val_metrics(transformer)}

    eval_cfg = compose_stage(conf_dir, "eval", [f"ckpt_path={ckpt}", *stage_overrides(cfg, "eval")], cfg,
                             "eval")
    with open_dict(eval_cfg):
        eval_cfg.ckpt_path = ckpt  # also when the path would need quoting on a command line
        eval_cfg.metrics.fid.enabled = bool(cfg.fid)
    report = timed("eval", evaluate, eval_cfg)
    if not report:  # a DDP process other than rank 0: that one writes the summary
        return {}
    summary["stages"]["eval"] = {"metrics": report["metrics"], "num_images": report["num_images"],
                                 "pictures": str(Path(eval_cfg.paths.output_dir) / "pictures")}

    # The same test images and masks, scored the same way, without the transformer. This runs in
    # rank 0 alone (the other DDP processes have ended), so it takes every core again.
    torch.set_num_threads(os.cpu_count() or 1)
    baselines_overrides = [f"ckpt_path={ckpt}", *stage_overrides(cfg, "eval"), "task=baselines",
                           *cfg.stages.baselines]  # after eval's: the baselines stage's own
    baselines_cfg = compose_stage(conf_dir, "eval", baselines_overrides, cfg, "baselines")
    with open_dict(baselines_cfg):
        baselines_cfg.ckpt_path = ckpt
        baselines_cfg.metrics.fid.enabled = eval_cfg.metrics.fid.enabled
    results = sorted((Path(eval_cfg.paths.output_dir) / "test_results").glob("image_*.png"))
    ours = torch.stack([read_image(f) for f in results[: int(baselines_cfg.baselines.picture_images)]])
    ours_first = Baselines({"maskgit (this run)": ours})  # our rows above the baselines in the picture
    baselines = timed("baselines", lambda c: evaluate(c, ours_first), baselines_cfg)
    rows = baselines["metrics"]
    comparison = {"maskgit (this run)": report["metrics"], **rows}
    write_table(comparison, out / "comparison.md", out / "comparison.csv",
                title=f"This run's inpainting beside the baselines, {report['num_images']} test images")
    summary["stages"]["baselines"] = {"metrics": {}, "table": str(out / "comparison.md")}
    summary["comparison"] = [{"method": name, **m} for name, m in comparison.items()]  # in table order
    masks = "the lab's masks" if baselines_cfg.masks.source == "dataset" else "these masks"
    summary["verdict"] = verdict(comparison, "maskgit (this run)", f"On {masks}")
    summary["seconds"]["total"] = round(time.perf_counter() - start, 1)
    summary["config"] = OmegaConf.to_container(cfg, resolve=True)
    save_json(summary, out / "summary.json")
    _print_summary(summary, out)
    return summary


def _checkpoint(result: dict[str, Any], stage: str) -> str:
    path = result.get("best_ckpt") or str(Path(result["output_dir"]) / "checkpoints" / "last.ckpt")
    if not Path(path).is_file():
        raise MaskGITError(f"quickstart: stage {stage} wrote no checkpoint (looked for {path})")
    return path


def _val_metrics(result: dict[str, Any]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in result["metrics"].items() if k.startswith("val/")}


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"quickstart ({'reduced' if summary['reduced'] else 'full'}): {out}")
    table.add_column("stage")
    table.add_column("minutes", justify="right")
    table.add_column("metrics")
    for stage in STAGES:
        metrics = summary["stages"][stage]["metrics"]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                          if v is not None and not any(part in k for part in ("ci95", "kid", "unseen")))
        shown = shown or ("the table below" if stage == "baselines" else "")
        table.add_row(stage, f"{summary['seconds'][stage] / 60:.1f}", shown)
    table.add_row("total", f"{summary['seconds']['total'] / 60:.1f}", "")
    console = Console()
    console.print(table)
    comparison = Table(title="inpainting beside the baselines (FID with its bootstrap 95% interval)")
    for name in ("method", "FID [95%]", "FID unseen", "KID x 1e3", "hole PSNR", "SSIM"):
        comparison.add_column(name, justify="left" if name == "method" else "right")
    for m in summary["comparison"]:
        fid = (f"{m['fid']:.2f} [{m['fid_ci95_low']:.2f}, {m['fid_ci95_high']:.2f}]"
               if "fid_ci95_low" in m else "")
        kid = f"{m['kid_mean'] * 1e3:.1f} ± {m['kid_std'] * 1e3:.1f}" if "kid_mean" in m else ""
        unseen = f"{m['fid_unseen']:.2f}" if "fid_unseen" in m else ""
        comparison.add_row(m["method"], fid, unseen, kid, f"{m['hole_psnr']:.2f}", f"{m['ssim']:.3f}")
    console.print(comparison)
    console.print(summary["verdict"])

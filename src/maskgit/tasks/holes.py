"""The hole-size study in one command (python holes.py +models.<name>=<ckpt> ...): conf/holes.yaml.

For each hole setting, each model inpaints the test split with eval.py's inpaint task (FID off: the
images only), then eval.py's baselines task scores those results beside the classical methods and the
VQGAN ceiling: one metric code path, one reference, the same images and masks for every row. Each run
is the config a user could run alone, in <run>/<hole>/<model> and <run>/<hole>/baselines.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from maskgit.errors import ConfigError
from maskgit.sweeps import hole_curve
from maskgit.tasks.quickstart import compose_stage
from maskgit.utils.atomic import save_json


def check(cfg: DictConfig) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The models and hole settings, checked before anything runs."""
    models = {str(k): str(v) for k, v in (cfg.models or {}).items()}
    if not models:
        raise ConfigError("holes.py needs at least one model: +models.<name>=<stage-2 checkpoint>")
    missing = [f"{name}={path}" for name, path in models.items() if not Path(path).is_file()]
    if missing:
        raise ConfigError(f"model checkpoint not found: {missing[0]}")
    holes = OmegaConf.to_container(cfg.holes, resolve=True) or {}
    if not holes:
        raise ConfigError("holes: no hole settings (name: eval.py masks block)")
    if cfg.ceiling_model is not None and cfg.ceiling_model not in models:
        raise ConfigError(f"ceiling_model={cfg.ceiling_model} is not one of models: {', '.join(models)}")
    unknown = [h for h in cfg.picture_holes if h not in holes]
    if unknown:
        raise ConfigError(f"picture_holes: {unknown[0]} is not one of holes: {', '.join(holes)}")
    clash = set(models) & set(cfg.methods)
    if clash:
        raise ConfigError(f"models.{sorted(clash)[0]}: a model cannot be named like a baseline method")
    return models, holes


def run_holes(cfg: DictConfig, conf_dir: Path) -> dict[str, Any]:
    """Every (hole, model) inpainting and every hole's baselines; the table, plot, picture and summary."""
    from maskgit.config.settings import check_settings
    from maskgit.tasks.baselines import Baselines
    from maskgit.tasks.eval import evaluate
    from maskgit.utils.quiet import quiet_libraries

    models, holes = check(cfg)
    quiet_libraries()
    out = Path(cfg.paths.output_dir)
    common = [*cfg.common, *(cfg.reduced_overrides if cfg.reduced else [])]
    ceiling = models[cfg.ceiling_model or next(iter(models))]
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    pictures: dict[str, hole_curve.HolePicture] = {}
    seconds: dict[str, float] = {}
    for hole, masks in holes.items():
        t0 = time.perf_counter()
        results = {}
        for name, ckpt in models.items():
            run_cfg = compose_stage(conf_dir, "eval", [*common, *cfg.eval], cfg, f"{hole}/{name}")
            _set(run_cfg, ckpt_path=ckpt, masks=masks, fid=False)
            run_cfg.pictures.num_images = run_cfg.pictures.grid_images = 0
            check_settings(run_cfg)
            evaluate(run_cfg)
            results[name] = run_cfg.paths.output_dir
        base_cfg = compose_stage(conf_dir, "eval", [*common, *cfg.eval, "task=baselines"], cfg,
                                 f"{hole}/baselines")
        _set(base_cfg, ckpt_path=ceiling, masks=masks, fid=bool(cfg.fid))
        base_cfg.baselines.methods = list(cfg.methods)
        base_cfg.baselines.results = results
        base_cfg.baselines.picture_images = int(cfg.picture_images)
        check_settings(base_cfg)
        task = Baselines()
        report = evaluate(base_cfg, task)
        for method, metrics in report["metrics"].items():
            kind = "maskgit" if method in models else hole_curve.kind_of(method)
            rows.append({"hole": hole, "series": hole_curve.series_of(masks),
                         "fraction": report["hole_fraction"], "method": method, "kind": kind, **metrics})
        if hole in cfg.picture_holes:
            pictures[hole] = hole_curve.HolePicture(report["hole_fraction"], task.shown_masked, task.shown)
        seconds[hole] = round(time.perf_counter() - t0, 1)
        # rewritten after every hole setting: a study cut short keeps what it measured
        shown = {h: pictures[h] for h in cfg.picture_holes if h in pictures}  # in picture_holes order
        summary = hole_curve.write_study(rows, shown, out, models=list(models))
        summary.update(seconds={**seconds, "total": round(time.perf_counter() - start, 1)},
                       config=OmegaConf.to_container(cfg, resolve=True), finished=hole == list(holes)[-1])
        save_json(summary, out / "summary.json")
    hole_curve.print_study(summary, out)
    return summary


def _set(stage_cfg: DictConfig, *, ckpt_path: str, masks: dict[str, Any], fid: bool) -> None:
    with open_dict(stage_cfg):
        stage_cfg.ckpt_path = ckpt_path  # also when the path would need quoting on a command line
        stage_cfg.masks = OmegaConf.merge(stage_cfg.masks, masks)
        stage_cfg.metrics.fid.enabled = fid

"""The one runner of every evaluation-side task (eval.py: inpaint, generate, baselines).

A task is a small plug-in (`EvalTask`): what it checks, what it loads, what it runs and what it
logs. The runner does the rest once, in this order (the settings' types and ranges are checked
first, by `tasks.eval.evaluate`): the multirun job's set-up; the config
tree; the sweep point store (a finished point is copied, nothing loaded; workers that reach the
same point at once compute it once, under its lock); the seed; the task's
loading (errors here leave no wandb run); the loggers; the task's work; then one finish: the report
with timings, versions and config, `metrics.json` (atomically), the point store, the loggers'
records, and the loggers closed whatever happened.

Also here: what the tasks share (the decoding settings, the model, the evaluation Trainer,
publishing a completed folder).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from filelock import FileLock
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from maskgit.config.record import save_config_tree
from maskgit.decoding.iterative import DecodeSettings
from maskgit.errors import ConfigError
from maskgit.modules.maskgit import MaskGIT
from maskgit.sweeps.multirun import prepare_multirun_job
from maskgit.sweeps.placement import placement, wall_clock
from maskgit.sweeps.points import PointStore
from maskgit.utils.atomic import save_json
from maskgit.utils.identity import BoundedCache
from maskgit.utils.locks import lock_path
from maskgit.utils.loggers import build_loggers, finish_loggers
from maskgit.utils.quiet import quiet_libraries
from maskgit.utils.versions import versions

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What a task's `run` gets: its config, output folder, loggers and what `load` returned."""

    cfg: DictConfig
    out: Path
    loggers: list
    loaded: Any = None
    point: dict[str, str] = field(default_factory=dict)


class EvalTask:
    """An evaluation-side task. Subclasses set `name` and override what they need."""

    name = ""
    stores_points = True  # finished points are kept in the sweep point store

    def settings(self, cfg: DictConfig) -> DecodeSettings | None:
        """Check the task's own settings before anything is loaded; the decoding, if it decodes."""
        return None

    def load(self, cfg: DictConfig) -> Any:
        """Load the model and data (one-line errors here stop the run before any logger starts)."""
        return None

    def run(self, run: Run) -> dict[str, Any] | None:
        """Do the work and publish the outputs; the report's fields, or None in a DDP process other
        than rank 0 (only rank 0 finishes)."""
        raise NotImplementedError

    def log(self, loggers: list, report: dict[str, Any], out: Path) -> None:
        """Send the report's metrics, tables and pictures to the loggers."""


def run_task(cfg: DictConfig, task: EvalTask) -> dict[str, Any]:
    """Run `task` under `cfg`; returns the metrics file's content ({} in DDP processes but rank 0)."""
    quiet_libraries()
    settings = task.settings(cfg)
    multirun = prepare_multirun_job(cfg)  # refuses DDP, names the point's wandb run in the sweep's group
    out = Path(cfg.paths.output_dir)
    save_config_tree(cfg, out)
    store = PointStore(cfg, settings) if task.stores_points else None
    where, started_at = placement(), wall_clock()
    log.info("point placement: %s", json.dumps(where))
    if not (store and multirun):
        return _run(cfg, task, settings, store, out, where, started_at)
    # Workers that reach the same point at once (e.g. total_iter=1 of two mask functions) compute it
    # once: the second waits on the point's lock, then reuses it. No DDP here (a multirun refuses it).
    with FileLock(str(lock_path(store.path))):
        if cfg.get("reuse_results", True) and (done := store.reuse(cfg, where)) is not None:
            return done
        return _run(cfg, task, settings, store, out, where, started_at)


def _run(cfg: DictConfig, task: EvalTask, settings: DecodeSettings | None, store: PointStore | None,
         out: Path, where: dict[str, Any], started_at: float) -> dict[str, Any]:
    """Load, run, report and store one point (or single run)."""
    L.seed_everything(cfg.seed, workers=True)
    loaded = task.load(cfg)
    loggers = build_loggers(cfg.get("logger"), cfg.paths.cache_dir)
    try:
        start = time.perf_counter()
        point = {"key": store.key, "store": str(store.path)} if store else {}
        fields = task.run(Run(cfg, out, loggers, loaded, point))
        if fields is None:
            return {}
        timings = {**fields.pop("timings_s", {}), "total": round(time.perf_counter() - start, 3)}
        decoding = {"preset": cfg.get("decoding_preset"), **asdict(settings)} if settings else None
        report = {"task": task.name, **fields, "decoding": decoding, "timings_s": timings, "skipped": False,
                  "point": point, "placement": where,
                  "wall_clock": {"started": started_at, "finished": wall_clock()},
                  "versions": versions(), "config": OmegaConf.to_container(cfg, resolve=True)}
        save_json(report, out / "metrics.json")
        if store:
            store.record(report, str(out))
        task.log(loggers, report, out)
        log.info("results: %s", out)
        return report
    finally:
        finish_loggers(loggers)


def not_applicable(cfg: DictConfig, reason: str) -> dict[str, Any]:
    """A sweep point that does not exist by rule (e.g. sweet_spot > total_iter): a metrics.json that
    says so (the table shows n/a), and nothing loaded, decoded, stored or logged. Where and when it ran
    is kept: under a launcher it held a GPU slot like any point."""
    started_at = wall_clock()
    report = {"task": cfg.get("task", "inpaint"), "not_applicable": reason, "skipped": True, "metrics": {},
              "placement": placement(), "wall_clock": {"started": started_at, "finished": wall_clock()},
              "config": OmegaConf.to_container(cfg, resolve=True)}
    save_json(report, Path(cfg.paths.output_dir) / "metrics.json")
    log.info("n/a: %s", reason)
    return report


# --- what the tasks share -------------------------------------------------------------------------

def decode_settings(cfg: DictConfig) -> DecodeSettings:
    """The decoding options (their fields, types and ranges: maskgit.decoding.settings)."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: python eval.py ckpt_path=/path/to/last.ckpt")
    return DecodeSettings.from_config(cfg)


_MODELS = BoundedCache(2)  # the models of this process's last checkpoints (a sweep uses one)


def load_model(ckpt_path: str, vqgan_ckpt_path: str | None, mtime: float, lab_model_json: str) -> MaskGIT:
    """A train.py checkpoint, or a lab transformer file read with the `model`/`vqgan` configs; loaded
    once per (file, modification time, settings) in a process."""
    def load() -> MaskGIT:
        lab = json.loads(lab_model_json)
        return MaskGIT.from_checkpoint(ckpt_path, vqgan_ckpt_path, lab_model=lab["model"],
                                       lab_attention_names=lab["attention_names"])

    return _MODELS.get_or_make((ckpt_path, vqgan_ckpt_path, mtime, lab_model_json), load)


def lab_model_json(cfg: DictConfig) -> str:
    """What reading a lab transformer file needs from the config, as a cacheable string."""
    names = cfg.get("lab_attention_names")
    return json.dumps({"model": OmegaConf.to_container(cfg.model, resolve=True),
                       "attention_names": list(names) if names else None}, sort_keys=True)


def model_for(cfg: DictConfig) -> tuple[MaskGIT, tuple[str, float]]:
    """The model `cfg.ckpt_path` names (loaded once per process) and the checkpoint's identity."""
    ckpt = Path(cfg.ckpt_path)
    identity = (str(ckpt.resolve()) if ckpt.exists() else str(ckpt),
                ckpt.stat().st_mtime if ckpt.exists() else 0.0)
    model = load_model(identity[0], cfg.get("vqgan_ckpt_path"), identity[1], lab_model_json(cfg))
    # Same weights and, in eval mode, the same logits (tested); SDPA is the faster kernel.
    model.transformer.set_fused_attention(bool(cfg.fused_attention))
    return model, identity


def check_guidance(model: MaskGIT, settings: DecodeSettings) -> None:
    """Guidance combines class-conditional and unconditional predictions: it needs a conditional model."""
    if settings.guidance and not model.conditional:
        raise ConfigError(f"guidance={settings.guidance} needs a class-conditional checkpoint (trained "
                          "with data=image_folder); this one is unconditional: set guidance=0")


def align_classes(model: MaskGIT, datamodule: Any) -> None:
    """Labelled data numbered as the class-conditional model numbers its classes (its checkpoint's)."""
    if model.conditional and hasattr(datamodule, "use_classes"):
        datamodule.use_classes([c["id"] for c in model.classes])


def model_report(cfg: DictConfig, module: Any) -> dict[str, Any]:
    """The report fields of a task that decodes with a checkpoint's model."""
    return {"metrics": module.final_metrics,
            "timings_s": {k: round(v, 3) for k, v in module.seconds.items()},
            "decoded_now": module.decoded_now,
            "checkpoint": str(Path(cfg.ckpt_path).resolve()),
            "vqgan": module.model.vqgan_record()}


def test_trainer(cfg: DictConfig, loggers: list, *partials: Path) -> L.Trainer:
    """The Trainer that runs a decoding task, with its (emptied) partial output folders made: results
    and pictures are published by `publish` only once complete."""
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[],
                                     use_distributed_sampler=False, enable_checkpointing=False,
                                     enable_model_summary=False)
    for folder in partials:
        if trainer.global_rank == 0:
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    return trainer


def publish(partial: Path, final: Path) -> None:
    """Replace `final` with the completed `partial` folder (a killed run leaves only the partial)."""
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)

"""Finished sweep points, found again by what decides their result: resumable and de-duplicated sweeps.

A point's key hashes everything that changes its metrics: the checkpoint's content (which pins
the VQGAN too: loading checks the VQGAN's digest against the checkpoint), the test data (root,
`data.limit.test`, `data.synthetic`), the decoding in canonical form (see `canonical_decoding`),
`composite`, the FID settings (enabled, unseen subset, feature layer) and the Inception weights'
content, `trainer.precision`, `seed`, the task with its masks or samples (`_task_parts`), and
what a lab transformer file is read with (model settings, VQGAN file content, attention names).
Paths of outputs and caches, loggers, batch sizes, progress bars, pictures and devices are left out
(the results do not depend on them).

Each finished point is stored as `<log_dir>/eval/points/<key>.json` (written atomically, after the
run's own metrics.json), so a sweep run again, in a new multirun folder, finds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from maskgit.data.mask_sources import mask_settings
from maskgit.inpainting import DecodeSettings
from maskgit.utils.atomic import save_json
from maskgit.utils.digest import file_sha256

log = logging.getLogger(__name__)

STORE_VERSION = 2  # bump when a code change makes stored results stale


def canonical_decoding(s: DecodeSettings) -> dict[str, Any]:
    """The decoding with equal results mapped to equal values.

    A sweet spot at or past the last step (sweet_spot >= total_iter - 1) is the full decoding (-1).
    A result taken after step 0 (total_iter=1, or sweet_spot=0) is the first step's samples for
    every masked token: the schedule, the number of steps, the temperature of the choice and the
    confidence only decide which tokens stay masked, so they do not matter there (the sampling
    temperature does).
    """
    if s.last_step == 0:
        return {"steps": "one step: every masked token takes step 0's sample",
                "temperature": s.temperature}
    return {"mask_func": s.mask_func, "total_iter": s.total_iter,
            "sweet_spot": -1 if s.last_step == s.total_iter - 1 else s.last_step,
            "choice_temperature": s.choice_temperature, "confidence": s.confidence,
            "temperature": s.temperature}


@cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the cache key: a rewritten file is hashed again
    return file_sha256(path)


def file_identity(path: str | None) -> str | None:
    """Content hash of a file (hashed once per process), or the path as given when it is missing."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return f"missing:{path}"
    st = p.stat()
    return _file_sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)


def key_parts(cfg: DictConfig, settings: DecodeSettings) -> dict[str, Any]:
    """Everything that decides a point's metrics (see the module docstring)."""
    fid = cfg.metrics.fid
    data = cfg.data
    root = Path(str(data.root)).expanduser()
    return {
        "store_version": STORE_VERSION,
        "checkpoint_sha256": file_identity(str(cfg.ckpt_path)),
        "data": {"root": str(root.resolve()) if root.exists() else str(root),
                 "limit_test": data.limit.get("test"),
                 "synthetic": OmegaConf.to_container(data.synthetic, resolve=True)
                 if isinstance(data.get("synthetic"), DictConfig) else data.get("synthetic")},
        "decoding": canonical_decoding(settings),
        "seed": int(cfg.seed),
        "composite": bool(cfg.composite),
        "fid": {"enabled": bool(fid.enabled), "unseen_subset": bool(fid.get("unseen_subset", False)),
                "features": int(fid.get("features", 2048)), "resize": fid.get("resize", "torch-fidelity"),
                "bootstrap": int(fid.get("bootstrap", 100)), "kid_subsets": int(fid.get("kid_subsets", 100)),
                "weights": _inception_identity(fid.weights_path) if fid.enabled else None},
        "precision": str(cfg.trainer.get("precision")),
        "fused_attention": bool(cfg.get("fused_attention", False)),
        "lab_file": _lab_file_parts(cfg),
        **_task_parts(cfg),
    }


def _task_parts(cfg: DictConfig) -> dict[str, Any]:
    """The task; for inpainting the masks (`masks.*`), for generation the samples and FID reference."""
    task = cfg.get("task", "inpaint")
    if task != "generate":
        return {"task": task, "masks": mask_settings(cfg.get("masks")), "generate": None}
    gen = cfg.generate
    return {"task": task, "masks": None,
            "generate": {"num_samples": int(gen.num_samples), "limit_val": cfg.data.limit.get("val"),
                         "fid_reference_limit": gen.get("fid_reference_limit")}}


def _lab_file_parts(cfg: DictConfig) -> dict[str, Any] | None:
    """What reading a lab transformer file takes from the config (a train.py checkpoint ignores it)."""
    if "model" not in cfg:
        return None
    names = cfg.get("lab_attention_names")
    return {"transformer": OmegaConf.to_container(cfg.model.transformer, resolve=True),
            "vqgan": file_identity(cfg.get("vqgan_ckpt_path") or cfg.model.vqgan.get("ckpt_path")),
            "attention_names": list(names) if names else None}


def _inception_identity(weights_path: str | None) -> str:
    if weights_path is None:
        from maskgit.metrics.inception import default_weights  # the packaged genuine weights

        weights_path = default_weights()
    return file_identity(str(weights_path))


def point_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def store_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.log_dir) / "eval" / "points"


class PointStore:
    """`<log_dir>/eval/points/<key>.json`: {key_parts, output_dir, report} of each finished point."""

    def __init__(self, cfg: DictConfig, settings: DecodeSettings):
        self.parts = key_parts(cfg, settings)
        self.key = point_key(self.parts)
        self.path = store_dir(cfg) / f"{self.key}.json"

    def find(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            entry = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as err:  # written atomically, so only by hand
            log.warning("ignoring unreadable sweep point %s (%s)", self.path, err)
            return None
        return entry if entry.get("key_parts") == json.loads(json.dumps(self.parts, default=str)) else None

    def record(self, report: dict[str, Any], output_dir: str) -> None:
        save_json({"key_parts": self.parts, "output_dir": output_dir, "report": report}, self.path)

    def reuse(self, cfg: DictConfig) -> dict[str, Any] | None:
        """When this point is done: write its metrics.json here (marked skipped) and return it."""
        entry = self.find()
        if entry is None:
            return None
        report = dict(entry["report"])
        report.update(
            skipped=True, reused_from=entry["output_dir"], decoded_now=0,
            point={"key": self.key, "store": str(self.path)},
            checkpoint=str(Path(cfg.ckpt_path).resolve()),
            config=OmegaConf.to_container(cfg, resolve=True))
        save_json(report, Path(cfg.paths.output_dir) / "metrics.json")
        log.info("sweep point %s is done already (%s): metrics copied, nothing decoded",
                 self.key, entry["output_dir"])
        return report

"""Finished sweep points, found again by what decides their result: resumable and de-duplicated sweeps.

A point's key hashes everything that changes its metrics: the checkpoint's content (which pins
the VQGAN too: loading checks the VQGAN's digest against the checkpoint), the content of the data
files the task reads (`data_identity`: names and sha256 of the test images, masks, ground truth and
provenance table after `data.limit.test`, or of the val images generation is measured against), the
decoding in canonical form (`DecodeSettings.canonical`, the seed among it),
`composite`, inpainting without the labels, the class-consistency classifier's settings (labelled
data), the FID settings (enabled, unseen subset, feature layer) and the Inception weights'
content, `trainer.precision`, the task with its masks or samples (`_task_parts`), and
what a lab transformer file is read with (model settings, VQGAN file content, attention names).
Paths of outputs and caches, loggers, batch sizes, progress bars, pictures and devices are left out
(the results do not depend on them).

Each finished point is stored as `<log_dir>/eval/points/<key>.json` (written atomically and sealed,
after the run's own metrics.json), so a sweep run again, in a new multirun folder, finds it; a
damaged or unsealed entry is named in a warning and computed again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from maskgit.data.layout import scan_layout
from maskgit.data.mask_sources import mask_settings
from maskgit.data.synthetic import make_synthetic_dataset
from maskgit.decoding.iterative import DecodeSettings
from maskgit.errors import ConfigError, DataError
from maskgit.utils.atomic import save_json
from maskgit.utils.identity import file_identity, files_digest, key
from maskgit.utils.integrity import json_payload, load_cached, save_json_sealed

log = logging.getLogger(__name__)

STORE_VERSION = 4  # bump when a code change makes stored results stale (4: sweet_spot counts steps run)


def path_identity(path: str | None) -> str | None:
    """Content hash of a file (`maskgit.utils.identity.file_identity`), or the path as given when it
    is missing."""
    if path is None:
        return None
    if not Path(path).is_file():
        return f"missing:{path}"
    return file_identity(path)


def data_identity(cfg: DictConfig) -> dict[str, Any]:
    """Names and content hashes of the data files the task reads (see the module docstring)."""
    data = cfg.data
    if isinstance(data.get("synthetic"), DictConfig):  # made on first use; its content is the key
        make_synthetic_dataset(Path(str(data.root)), **OmegaConf.to_container(data.synthetic, resolve=True))
    limit = OmegaConf.to_container(data.limit, resolve=True) if data.get("limit") else None
    generate = cfg.get("task", "inpaint") == "generate"
    if str(data.get("_target_", "")).endswith("LabelledDataModule"):
        return _labelled_identity(data, limit)
    try:
        layout = scan_layout(str(data.root), splits=("val",) if generate else ("test",),
                             check_images=False, limit=limit)
    except DataError as err:  # the run itself reports it, once it checks the data
        return {"unreadable": str(err)}
    files = [*layout.val_files, *layout.test_files, *layout.mask_files, *(layout.gt_files or [])]
    if layout.in_trainval is not None:
        files.append(layout.root / "gt_provenance.tsv")
    try:
        digest = files_digest(files, root=layout.root)
    except OSError as err:  # removed since the scan: the run itself reports it
        return {"unreadable": str(err)}
    return {"files": len(files), "sha256": digest}


def _labelled_identity(data: DictConfig, limit: dict[str, Any] | None) -> dict[str, Any]:
    """A labelled folder's val split (the test images and the FID reference): files and labels."""
    from maskgit.data.labelled_layout import scan_labelled

    limit = dict(limit or {})
    try:
        layout = scan_labelled(str(data.root), layout=data.get("layout", "auto"), classes=data.get("classes"),
                               val_fraction=float(data.get("val_fraction", 0.1)), check_images=False,
                               splits=("val",), limit={"val": limit.get("test") or limit.get("val")})
        digest = files_digest(layout.val_files, root=layout.root)
    except (DataError, ConfigError, OSError) as err:  # the run itself reports it
        return {"unreadable": str(err)}
    return {"files": len(layout.val_files), "sha256": digest, "labels": layout.val_labels,
            "classes": layout.class_ids, "image_size": int(data.get("image_size", 64))}


def key_parts(cfg: DictConfig, settings: DecodeSettings) -> dict[str, Any]:
    """Everything that decides a point's metrics (see the module docstring)."""
    fid = cfg.metrics.fid
    return {
        "store_version": STORE_VERSION,
        "checkpoint_sha256": path_identity(str(cfg.ckpt_path)),
        "data": data_identity(cfg),
        "decoding": settings.canonical(),  # the seed among them
        "composite": bool(cfg.composite),
        "fid": {"enabled": bool(fid.enabled), "unseen_subset": bool(fid.get("unseen_subset", False)),
                "features": int(fid.get("features", 2048)), "resize": fid.get("resize", "torch-fidelity"),
                "bootstrap": int(fid.get("bootstrap", 100)), "kid_subsets": int(fid.get("kid_subsets", 100)),
                "weights": _inception_identity(fid.weights_path) if fid.enabled else None},
        "precision": str(cfg.trainer.get("precision")),
        "fused_attention": bool(cfg.get("fused_attention", False)),
        "lab_file": _lab_file_parts(cfg),
        **_task_parts(cfg),
        **_class_parts(cfg),
    }


def _class_parts(cfg: DictConfig) -> dict[str, Any]:
    """Inpainting without the labels, and the class-consistency classifier's settings on labelled data
    (absent otherwise, so the keys of other points stay what they were)."""
    parts: dict[str, Any] = {}
    if cfg.get("task", "inpaint") == "inpaint" and not (cfg.get("inpaint") or {}).get("use_labels", True):
        parts["use_labels"] = False
    classifier = cfg.get("metrics", {}).get("classifier")
    if str(cfg.data.get("_target_", "")).endswith("LabelledDataModule") and classifier is not None:
        parts["classifier"] = OmegaConf.to_container(classifier, resolve=True)
    return parts


def _task_parts(cfg: DictConfig) -> dict[str, Any]:
    """The task; for inpainting the masks (`masks.*`), for generation the samples and FID reference."""
    task = cfg.get("task", "inpaint")
    if task != "generate":
        return {"task": task, "masks": mask_settings(cfg.get("masks")), "generate": None}
    gen = cfg.generate
    return {"task": task, "masks": None,
            "generate": {"num_samples": int(gen.num_samples), "limit_val": cfg.data.limit.get("val"),
                         **({"classes": list(gen.classes)} if gen.get("classes") else {}),
                         "fid_reference_limit": gen.get("fid_reference_limit")}}


def _lab_file_parts(cfg: DictConfig) -> dict[str, Any] | None:
    """What reading a lab transformer file takes from the config (a train.py checkpoint ignores it)."""
    if "model" not in cfg:
        return None
    names = cfg.get("lab_attention_names")
    return {"transformer": OmegaConf.to_container(cfg.model.transformer, resolve=True),
            "vqgan": path_identity(cfg.get("vqgan_ckpt_path") or cfg.model.vqgan.get("ckpt_path")),
            "attention_names": list(names) if names else None}


def _inception_identity(weights_path: str | None) -> str:
    if weights_path is None:
        from maskgit.metrics.inception import default_weights  # the packaged genuine weights

        weights_path = default_weights()
    return path_identity(str(weights_path))


def point_key(parts: dict[str, Any]) -> str:
    return key(parts)


def store_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.log_dir) / "eval" / "points"


class PointStore:
    """`<log_dir>/eval/points/<key>.json`: {key_parts, output_dir, report} of each finished point."""

    def __init__(self, cfg: DictConfig, settings: DecodeSettings):
        self.parts = key_parts(cfg, settings)
        self.key = point_key(self.parts)
        self.path = store_dir(cfg) / f"{self.key}.json"

    def find(self) -> dict[str, Any] | None:
        entry = load_cached(self.path, json_payload, "sweep point")
        if not isinstance(entry, dict):
            return None
        return entry if entry.get("key_parts") == json.loads(json.dumps(self.parts, default=str)) else None

    def record(self, report: dict[str, Any], output_dir: str) -> None:
        save_json_sealed({"key_parts": self.parts, "output_dir": output_dir, "report": report}, self.path)

    def reuse(self, cfg: DictConfig, placement: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """When this point is done: write its metrics.json here (marked skipped, with this job's
        `placement`) and return it."""
        entry = self.find()
        if entry is None:
            return None
        report = dict(entry["report"])
        report.update(
            skipped=True, reused_from=entry["output_dir"], decoded_now=0,
            point={"key": self.key, "store": str(self.path)}, placement=placement,
            wall_clock=None,
            checkpoint=str(Path(cfg.ckpt_path).resolve()),
            config=OmegaConf.to_container(cfg, resolve=True))
        save_json(report, Path(cfg.paths.output_dir) / "metrics.json")
        log.info("sweep point %s is done already (%s): metrics copied, nothing decoded",
                 self.key, entry["output_dir"])
        return report

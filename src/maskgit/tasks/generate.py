"""Generation (python eval.py task=generate ckpt_path=... generate.num_samples=N).

A class-conditional checkpoint generates N samples per class of `generate.classes` (ids or names;
null: all its classes), guided by `guidance`; `generated/samples.tsv` names each sample's class,
`pictures/samples.png` has one row per class, and `metrics.json` adds FID and KID per class and
the class consistency (see `modules.generation`). Otherwise:
decodes N fully masked canvases with eval.py's decoding settings (sample i seeded from (seed, i)),
and writes `generated/sample_0000.png ...` (into `generated.partial/`, renamed when complete),
`pictures/samples.png` (a grid), progression pictures for the first `pictures.num_images` samples,
and `metrics.json` (by the runner: config, FID against the val images, timings, versions). The val
statistics are cached on disk, keyed by the val files' content and the Inception weights. In a
multirun, finished points are kept in the sweep point store like inpainting points (the task, N and
the FID reference are part of the key).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torchvision.utils import make_grid

from maskgit.data.datamodule import ImageDataModule
from maskgit.data.images import read_image
from maskgit.data.labelled import LabelledDataModule
from maskgit.decoding.iterative import DecodeSettings
from maskgit.errors import ConfigError
from maskgit.metrics.fid import fid_settings, settings_record
from maskgit.modules.generation import ClassSetting, SampleGenerator
from maskgit.modules.maskgit import MaskGIT
from maskgit.tasks import class_reading, runner
from maskgit.utils.atomic import atomic_path
from maskgit.utils.pictures import save_picture

log = logging.getLogger(__name__)


class Generate(runner.EvalTask):
    name = "generate"

    def settings(self, cfg: DictConfig) -> DecodeSettings:
        """num_samples and fid_reference_limit are typed and ranged in maskgit.config.settings."""
        n = int(cfg.generate.num_samples)
        if cfg.metrics.fid.enabled and n < 2:
            raise ConfigError(f"FID needs at least 2 samples, got generate.num_samples={n} "
                              "(or set metrics.fid.enabled=false)")
        self.decoding = runner.decode_settings(cfg)
        if self.decoding.temperature == 0:
            log.warning("temperature=0 (argmax codes, the lab preset's): from a blank canvas the samples "
                        "differ only by the choice noise; decoding=paper or temperature=1 draws the codes")
        return self.decoding

    def load(self, cfg: DictConfig) -> SampleGenerator:
        model, ckpt_identity = runner.model_for(cfg)
        runner.check_guidance(model, self.decoding)
        datamodule: ImageDataModule = instantiate(cfg.data)
        runner.align_classes(model, datamodule)
        files, labels = datamodule.reference_files()
        self.chosen = chosen_classes(model, cfg.generate.get("classes"))
        n, classes = int(cfg.generate.num_samples), None
        if self.chosen is not None:
            classes = ClassSetting(torch.tensor(self.chosen).repeat_interleave(n))
            n = len(classes.sample_labels)
            if labels is not None:  # the reference: the chosen classes' val images
                keep = [i for i, c in enumerate(labels) if c in self.chosen]
                files, labels = [files[i] for i in keep], [labels[i] for i in keep]
                if cfg.metrics.classifier.enabled:
                    self.train_classifier(cfg, datamodule, classes)
        out = Path(cfg.paths.output_dir)
        fid, self.reference = fid_settings(cfg), None
        if fid is not None:
            limit = cfg.generate.get("fid_reference_limit")
            files = files[:limit]
            if len(files) < 2:
                raise ConfigError(f"FID needs at least 2 val images as its reference, got {len(files)}")
            self.reference = (files, datamodule.files_key(files))
            if classes is not None and labels is not None:
                classes.reference_labels = torch.tensor(labels[:limit])
        return SampleGenerator(
            model, self.decoding, out / "generated.partial", n,
            batch_size=int(cfg.data.batch_size), fid=fid, reference=self.reference,
            cache_dir=Path(cfg.paths.cache_dir) / "fid", num_pictures=cfg.pictures.num_images,
            pictures_dir=out / "pictures.partial", memo_scope=f"{ckpt_identity}|fused={cfg.fused_attention}",
            classes=classes, read=datamodule.read)

    def run(self, run: runner.Run) -> dict[str, Any] | None:
        cfg, out, generator = run.cfg, run.out, run.loaded
        samples_dir, partial = out / "generated", out / "generated.partial"
        trainer = runner.test_trainer(cfg, run.loggers, partial, out / "pictures.partial")
        trainer.test(generator, verbose=False)
        if trainer.global_rank != 0:
            return None
        runner.publish(partial, samples_dir)
        runner.publish(out / "pictures.partial", out / "pictures")
        files = sorted(samples_dir.glob("sample_*.png"))
        n = int(cfg.generate.grid_images)
        per_class = int(cfg.generate.num_samples)
        if self.chosen is not None:
            self.write_labels(generator.model, samples_dir / "samples.tsv", files, per_class)
        if n:
            # one row per class (its first samples, at most 8), or the first n samples in rows of 8
            columns = min(8, per_class) if self.chosen is not None else min(8, len(files))
            shown_files = ([f for k in range(len(self.chosen)) for f in files[k * per_class:][:columns]]
                           if self.chosen is not None else files[:n])
            shown = torch.stack([read_image(f) for f in shown_files])
            save_picture(make_grid(shown, nrow=columns, padding=2, pad_value=255),
                         out / "pictures" / "samples.png")
        log.info("metrics: %s", generator.final_metrics)
        return {
            **runner.model_report(cfg, generator),
            "num_samples": len(files),
            "classes": ([generator.model.classes[c] | {"label": c} for c in self.chosen]
                        if self.chosen is not None else None),
            "fid": {**(settings_record(generator.fid) if generator.fid else {}), "reference": "val",
                    "reference_images": len(self.reference[0]) if self.reference else None},
        }

    @staticmethod
    def train_classifier(cfg: DictConfig, datamodule: LabelledDataModule, classes: ClassSetting) -> None:
        """The class-consistency classifier, trained on the real training images of every class of
        the model (or read from the cache), and its accuracy on the real val images."""
        reader = class_reading.fit_reader(cfg, datamodule)
        classes.classifier, classes.classifier_val_accuracy = reader.classifier, reader.val_accuracy

    def write_labels(self, model, path: Path, files: list[Path], per_class: int) -> None:
        """samples.tsv: each sample's file, label and class (id, name)."""
        lines = ["file\tlabel\tclass_id\tclass_name"]
        for i, f in enumerate(files):
            label = self.chosen[i // per_class]
            lines.append(f"{f.name}\t{label}\t{model.classes[label]['id']}\t{model.classes[label]['name']}")
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n")

    def log(self, loggers: list, report: dict[str, Any], out: Path) -> None:
        metrics = {f"generate/{k}": v for k, v in report["metrics"].items() if isinstance(v, int | float)}
        grid = out / "pictures" / "samples.png"
        progressions = sorted((out / "pictures").glob("progression_*.png"))
        for logger in loggers:
            if metrics:
                logger.log_metrics(metrics)
            if not hasattr(logger, "log_image"):
                continue
            if grid.is_file():
                logger.log_image("generate/samples", [str(grid)])
            if progressions:  # one key per picture size
                logger.log_image("generate/progressions", [str(p) for p in progressions],
                                 caption=[p.stem for p in progressions])


def chosen_classes(model: MaskGIT, wanted: Any) -> list[int] | None:
    """Label ids of `generate.classes` (ids or names; null: all) for a class-conditional model;
    None for an unconditional one (which takes no classes)."""
    if not model.conditional:
        if wanted:
            raise ConfigError("generate.classes needs a class-conditional checkpoint (trained with "
                              "data=image_folder); this one is unconditional")
        return None
    if not wanted:
        return list(range(len(model.classes)))
    by_key: dict[str, set[int]] = {}
    for label, c in enumerate(model.classes):
        for k in (c["id"], *(n.strip() for n in str(c["name"]).split(","))):
            by_key.setdefault(k.lower(), set()).add(label)
    chosen = []
    for w in wanted:
        found = by_key.get(str(w).strip().lower(), set())
        if len(found) != 1:
            ids = ", ".join(c["id"] for c in model.classes[:5]) + (", ..." if len(model.classes) > 5 else "")
            what = "matches several classes" if found else "is not a class of this checkpoint"
            raise ConfigError(f"generate.classes: {w!r} {what} (its ids: {ids}; or their names)")
        chosen.append(found.pop())
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"generate.classes names a class twice: {list(wanted)}")
    return chosen

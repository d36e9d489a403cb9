"""The class-conditional tutorial (docs/class_conditional.md) end to end: the UCI digits as an ImageFolder,
the tutorial's VQGAN and a class-conditional transformer trained on them (stage 2 shortened to 300
steps), then generation per class with and without classifier-free guidance. Guidance must raise
class consistency above w=0 and well above chance (10 classes: 0.1).

About 12 minutes on 2 CPU cores: its own CI step (pytest -m tutorial), left out of the plain pytest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_config

from maskgit.data.digits import export_digits
from maskgit.tasks.eval import evaluate
from maskgit.tasks.train import train

QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "callbacks.model_summary=null"]


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory, cache_dir) -> tuple[Path, Path]:
    """(digits folder, class-conditional checkpoint): the tutorial's stage 1, its stage 2 at 300 steps."""
    root = tmp_path_factory.mktemp("tutorial")
    digits = root / "digits"
    export_digits(digits)
    torch.set_num_threads(2)
    stage1 = root / "vqgan"
    train(compose_config("train", ["experiment=digits_vqgan", f"data.root={digits}",
                                   "model.pictures.num_images=0", *QUIET], stage1, cache_dir))
    stage2 = root / "transformer"
    train(compose_config("train", ["experiment=digits", f"data.root={digits}",
                                   f"vqgan.ckpt_path={stage1 / 'checkpoints' / 'last.ckpt'}",
                                   "trainer.max_steps=300", "trainer.val_check_interval=300", *QUIET],
                         stage2, cache_dir))
    return digits, stage2 / "checkpoints" / "last.ckpt"


def generate(tmp_path: Path, cache_dir: Path, digits: Path, ckpt: Path, guidance: float) -> dict:
    cfg = compose_config("eval", [f"ckpt_path={ckpt}", "task=generate", "data=image_folder",
                                  f"data.root={digits}", "generate.num_samples=10", "mask_func=arccos",
                                  "total_iter=9", "temperature=1.0", f"guidance={guidance}",
                                  "metrics.fid.enabled=false",
                                  "metrics.classifier.epochs=6", "trainer=cpu", "pictures.num_images=0",
                                  *QUIET[:2]], tmp_path / f"w{guidance}", cache_dir)
    return evaluate(cfg)


@pytest.mark.tutorial
def test_guidance_raises_class_consistency(tmp_path, cache_dir, digits_models):
    digits, ckpt = digits_models
    plain = generate(tmp_path, cache_dir, digits, ckpt, 0.0)["metrics"]
    guided = generate(tmp_path, cache_dir, digits, ckpt, 2.0)["metrics"]
    assert plain["classifier_val_accuracy"] > 0.9  # the measure reads real digits
    assert guided["class_accuracy"] > plain["class_accuracy"] + 0.05, (plain, guided)
    assert guided["class_accuracy"] > 0.3, guided  # three times chance
    assert len(guided["class_accuracy_per_class"]) == 10
    with open(tmp_path / "w2.0" / "generated" / "samples.tsv") as f:
        assert sum(1 for _ in f) == 1 + 100

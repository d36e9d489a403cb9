"""data=image_folder through the whole framework on a folder in tiny-imagenet-200's own layout:
train.py makes a class-conditional transformer, eval.py inpaints labelled images (masks from a
generator) and generates chosen classes with per-class FID, KID and class consistency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, run_cli
from PIL import Image

from maskgit.data.images import read_image
from maskgit.errors import ConfigError
from maskgit.modules.maskgit import MaskGIT
from maskgit.tasks.eval import evaluate
from maskgit.tasks.train import train

WNIDS = {"n02124075": "Egyptian cat", "n01443537": "goldfish, Carassius auratus", "n04398044": "teapot"}
PER_CLASS, VAL_PER_CLASS = 12, 4


def write_tiny_imagenet(root: Path) -> Path:
    """3 classes of 64x64 JPEGs in tiny-imagenet-200's layout; each class a colour, with noise."""
    rng = np.random.default_rng(0)
    colours = {"n02124075": (200, 120, 40), "n01443537": (230, 90, 20), "n04398044": (60, 90, 200)}
    (root / "val" / "images").mkdir(parents=True)
    (root / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in WNIDS.items()) + "n00000001\tentity\n")
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    lines = []
    for wnid, colour in colours.items():
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(PER_CLASS + VAL_PER_CLASS):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
            if i < PER_CLASS:
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", format="JPEG")
            else:
                name = f"val_{len(lines)}.JPEG"
                Image.fromarray(pixels).save(root / "val" / "images" / name, format="JPEG")
                lines.append(f"{name}\t{wnid}\t0\t0\t63\t63\n")
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    return root


def labelled_train_overrides(root: Path, vqgan_path: Path) -> list[str]:
    return ["data=image_folder", f"data.root={root}", "data.batch_size=8", "vqgan=tiny",
            f"vqgan.ckpt_path={vqgan_path}", "model=tiny", "trainer=cpu",
            "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
            "logger=csv", "callbacks.model_summary=null"]


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory) -> Path:
    return write_tiny_imagenet(tmp_path_factory.mktemp("tiny-imagenet-200"))


@pytest.fixture(scope="module")
def conditional_ckpt(tmp_path_factory, cache_dir, tiny_imagenet, tiny_vqgan_path) -> Path:
    out = tmp_path_factory.mktemp("train-labelled")
    cfg = compose_config("train", labelled_train_overrides(tiny_imagenet, tiny_vqgan_path)
                         + ["data.classes=[teapot, n02124075]"], out, cache_dir)
    train(cfg)
    return out / "checkpoints" / "last.ckpt"


def eval_args(ckpt: Path, root: Path, inception: Path, *extra: str) -> list[str]:
    return [f"ckpt_path={ckpt}", "data=image_folder", f"data.root={root}", "data.batch_size=4",
            f"metrics.fid.weights_path={inception}", "metrics.fid.features=64", "metrics.fid.bootstrap=5",
            "metrics.fid.kid_subsets=5", "metrics.classifier.epochs=2", "trainer=cpu",
            "trainer.enable_progress_bar=false", "logger=csv",
            "total_iter=3", "temperature=1.0", "pictures.num_images=1", "pictures.grid_images=4", *extra]


def test_training_on_labelled_folder_makes_a_conditional_checkpoint(conditional_ckpt):
    model = MaskGIT.from_checkpoint(str(conditional_ckpt))
    assert model.conditional and model.transformer.num_classes == 2
    assert model.classes == [{"id": "n04398044", "name": "teapot"},
                             {"id": "n02124075", "name": "Egyptian cat"}]  # the order data.classes gave
    ckpt = torch.load(conditional_ckpt, map_location="cpu", weights_only=True)
    assert "transformer.class_emb.weight" in ckpt["state_dict"]


def test_token_cache_carries_the_labels(conditional_ckpt, cache_dir):
    files = sorted((cache_dir / "tokens").glob("labelled-train-*.pt"))
    assert files
    payload = torch.load(files[-1], weights_only=True)
    assert payload["tokens"].shape == (2 * PER_CLASS, 256)
    assert payload["labels"].tolist() == [0] * PER_CLASS + [1] * PER_CLASS


def test_label_conditioned_inpainting_with_guidance(tmp_path, cache_dir, tiny_imagenet, conditional_ckpt,
                                                    inception_weights):
    cfg = compose_config("eval", eval_args(conditional_ckpt, tiny_imagenet, inception_weights,
                                           "masks.source=box", "guidance=1.0"), tmp_path, cache_dir)
    report = evaluate(cfg)
    assert report["num_images"] == 2 * VAL_PER_CLASS  # the val images of the model's two classes
    assert {"fid", "kid_mean", "hole_psnr", "masked_token_accuracy"} <= set(report["metrics"])
    assert (tmp_path / "pictures" / "grid.png").is_file()
    # another guidance is another decoding (not served from the step memory); that guidance changes
    # the tokens is shown on a model with a strong class preference (test_class_conditional)
    other = compose_config("eval", eval_args(conditional_ckpt, tiny_imagenet, inception_weights,
                                             "masks.source=box", "guidance=0"), tmp_path / "w0", cache_dir)
    assert evaluate(other)["decoded_now"] == 2 * VAL_PER_CLASS


def test_labelled_folder_has_no_masks_of_its_own(tmp_path, cache_dir, tiny_imagenet, conditional_ckpt,
                                                 inception_weights):
    cfg = compose_config("eval", eval_args(conditional_ckpt, tiny_imagenet, inception_weights), tmp_path,
                         cache_dir)
    with pytest.raises(ConfigError, match="masks.source"):
        evaluate(cfg)


def test_generate_chosen_classes_per_class_metrics_and_labels(tmp_path, cache_dir, tiny_imagenet,
                                                              conditional_ckpt, inception_weights):
    args = eval_args(conditional_ckpt, tiny_imagenet, inception_weights, "task=generate",
                     "generate.num_samples=3", "generate.classes=[Egyptian cat,teapot]", "guidance=2",
                     "guidance_schedule=linear")
    cfg = compose_config("eval", args, tmp_path, cache_dir)
    report = evaluate(cfg)
    assert report["num_samples"] == 6
    assert [c["label"] for c in report["classes"]] == [1, 0]
    tsv = (tmp_path / "generated" / "samples.tsv").read_text().splitlines()
    assert tsv[1].split("\t") == ["sample_0000.png", "1", "n02124075", "Egyptian cat"]
    assert tsv[-1].split("\t") == ["sample_0005.png", "0", "n04398044", "teapot"]
    metrics = report["metrics"]
    assert set(metrics["per_class"]) == {"0", "1"} and "fid" in metrics["per_class"]["1"]
    assert 0 <= metrics["class_accuracy"] <= 1
    assert set(metrics["class_accuracy_per_class"]) == {"0", "1"}
    # the classifier separates these colours: the real val images are read right
    assert metrics["classifier_val_accuracy"] == 1.0
    with Image.open(tmp_path / "pictures" / "samples.png") as img:  # a row per class, 3 samples each
        assert img.size == (2 + 3 * 66, 2 + 2 * 66)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["config"]["guidance"] == 2.0
    # the Python API draws the same samples from the same settings (no second decoding path)
    from maskgit import Inpainter

    painter = Inpainter.from_checkpoint(conditional_ckpt)
    drawn = painter.generate(3, classes=["Egyptian cat", "teapot"], preset="lab", temperature=1.0,
                             total_iter=3, guidance=2.0, guidance_schedule="linear")
    assert drawn.shape == (6, 3, 64, 64) and drawn.dtype == torch.uint8
    for i in range(6):
        assert torch.equal(drawn[i], read_image(tmp_path / "generated" / f"sample_{i:04d}.png")), i


@pytest.mark.parametrize("args, message", [
    (["task=generate", "generate.classes=[zebra]"], "'zebra' is not a class of this checkpoint"),
    (["task=generate", "guidance=-1"], "guidance must be a number >= 0"),
    (["masks.source=box", "inpaint.use_labels=false", "guidance=2"], "guidance=2.0 needs the labels"),
    (["masks.source=box", "inpaint.use_labels=perhaps"], "inpaint.use_labels"),
    (["masks.source=box", "masks.hidden_ink=[0.6,0.2]"], "masks.hidden_ink must satisfy"),
])
def test_bad_class_settings_are_one_line(tmp_path, tiny_imagenet, conditional_ckpt, inception_weights, args,
                                         message):
    result = run_cli("eval.py", *eval_args(conditional_ckpt, tiny_imagenet, inception_weights, *args),
                     f"paths.log_dir={tmp_path}/logs", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_guidance_on_an_unconditional_checkpoint_is_refused(tmp_path, cache_dir, data_root, trained_ckpt,
                                                            inception_weights):
    from conftest import eval_overrides

    cfg = compose_config("eval", eval_overrides(trained_ckpt, data_root, inception_weights) + ["guidance=1"],
                         tmp_path, cache_dir)
    with pytest.raises(ConfigError, match="needs a class-conditional checkpoint"):
        evaluate(cfg)


def _inpaint(out: Path, cache_dir: Path, models: tuple[Path, Path, Path], *extra: str) -> tuple[dict, object]:
    """(report, config) of eval.py on the labelled folder under box masks; `models`: (folder, ckpt,
    Inception weights)."""
    root, ckpt, inception = models
    cfg = compose_config("eval", eval_args(ckpt, root, inception, "masks.source=box", *extra), out, cache_dir)
    return evaluate(cfg), cfg


def test_inpainting_reads_the_class_of_inpainted_masked_and_original_images(tmp_path, cache_dir,
                                                                           tiny_imagenet, conditional_ckpt,
                                                                           inception_weights):
    from hydra.utils import instantiate

    from maskgit.data.mask_sources import draw_masks, fill_holes
    from maskgit.tasks.class_reading import fit_reader

    report, cfg = _inpaint(tmp_path, cache_dir, (tiny_imagenet, conditional_ckpt, inception_weights))
    metrics = report["metrics"]
    # the same classifier (from its cache) reads the files the run wrote, its masked inputs and originals
    datamodule = instantiate(cfg.data)
    datamodule.use_classes(["n04398044", "n02124075"])  # the checkpoint's classes, in its order
    reader = fit_reader(cfg, datamodule)
    layout = datamodule.layout_with("val")
    labels = torch.tensor(layout.val_labels)
    original = datamodule.read_images(layout.val_files)
    results = torch.stack([read_image(tmp_path / "test_results" / f"image_{i:03d}.png")
                           for i in range(len(labels))])
    masked = fill_holes(original, draw_masks(report["masks"], original))
    assert metrics["class_accuracy"] == reader.accuracy(results, labels)
    assert metrics["class_accuracy_masked_input"] == reader.accuracy(masked, labels)
    assert metrics["class_accuracy_original"] == reader.accuracy(original, labels) == 1.0
    assert metrics["classifier_val_accuracy"] == 1.0
    # an untrained model's inpainting does not read better than the originals
    assert metrics["class_accuracy"] <= metrics["class_accuracy_original"]
    assert json.loads((tmp_path / "metrics.json").read_text())["inpaint"] == {"use_labels": True}


def test_inpainting_without_labels_gives_the_model_the_null_class(tmp_path, cache_dir, tiny_imagenet,
                                                                  conditional_ckpt, inception_weights,
                                                                  monkeypatch):
    import maskgit.modules.inpainting as inpainting
    from maskgit.sweeps.points import key_parts
    from maskgit.tasks.runner import decode_settings

    given: list[torch.Tensor] = []
    real_decode = inpainting.decode

    def spy(*args, labels=None, **kwargs):
        given.append(labels.clone())
        return real_decode(*args, labels=labels, **kwargs)

    monkeypatch.setattr(inpainting, "decode", spy)
    models = (tiny_imagenet, conditional_ckpt, inception_weights)
    _, cfg_on = _inpaint(tmp_path / "on", cache_dir, models, "seed=7")
    on = torch.cat(given)
    given.clear()
    without, cfg_off = _inpaint(tmp_path / "off", cache_dir, models, "seed=7", "inpaint.use_labels=false")
    off = torch.cat(given)
    null = MaskGIT.from_checkpoint(str(conditional_ckpt)).transformer.null_class
    assert sorted(set(on.tolist())) == [0, 1]  # each image's own label
    assert off.tolist() == [null] * len(off)  # every image: the null class
    assert without["decoded_now"] == 2 * VAL_PER_CLASS  # decoded again, not served from the step memory
    assert without["inpaint"] == {"use_labels": False} and "class_accuracy" in without["metrics"]
    assert key_parts(cfg_on, decode_settings(cfg_on)) != key_parts(cfg_off, decode_settings(cfg_off))


def test_baselines_read_the_class_on_a_labelled_folder(tmp_path, cache_dir, tiny_imagenet, conditional_ckpt,
                                                       inception_weights):
    from maskgit.data.images import write_png
    from maskgit.data.labelled_layout import read_resized, scan_labelled

    classes = ["n04398044", "n02124075"]
    val = scan_labelled(tiny_imagenet, classes=classes, splits=("val",)).val_files
    perfect = tmp_path / "perfect" / "test_results"  # inpainting as eval.py names it: image_NNN.png
    perfect.mkdir(parents=True)
    for i, f in enumerate(val):
        write_png(read_resized(f), perfect / f"image_{i:03d}.png")
    report, _ = _inpaint(tmp_path, cache_dir, (tiny_imagenet, conditional_ckpt, inception_weights),
                         "task=baselines", "baselines.methods=[masked_input,telea,navier_stokes]",
                         "masks.hidden_ink=[0,1]", "data.classes=[teapot,n02124075]",
                         f"baselines.results={{perfect:{perfect.parent}}}")
    rows, reading = report["metrics"], report["class_reading"]
    assert rows.pop("perfect")["class_accuracy"] == reading["class_accuracy_original"]
    assert set(rows) == {"masked_input", "telea", "navier_stokes"}
    assert all(0 <= m["class_accuracy"] <= 1 for m in rows.values())
    assert rows["masked_input"]["class_accuracy"] == reading["class_accuracy_masked_input"]
    assert reading["class_accuracy_original"] == 1.0
    assert set(report["hidden_ink_share"]) == {"mean", "min", "max"}
    assert "class accuracy" in (tmp_path / "baselines.md").read_text()

"""Stage-1 VQGAN training (experiment=vqgan) on the real data set, its losses, metrics and checkpoint."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import ROOT, TINY_VQGAN, compose_config, tiny_train_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.models.vgg import cfgs, make_layers

from maskgit.data.images import LAB_TRAIN, read_image
from maskgit.data.layout import scan_layout
from maskgit.errors import ConfigError, user_error_in
from maskgit.metrics.codebook import CodebookUsage
from maskgit.models.checkpoint import build_vqgan
from maskgit.models.perceptual import VGG16_FILE, PerceptualLoss
from maskgit.modules.vqgan_training import VQGANTraining, adaptive_weight
from maskgit.tasks.train import train

N_TRAIN, N_VAL, BATCH, PICTURES = 8, 4, 4, 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on the shared 2-core machine two OpenMP threads made each convolution
    step ~10x slower (measured: tiny VQGAN step at batch 2, 0.5 s vs 5.2 s with a busy core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_random_vgg16(torch_home: Path) -> Path:
    """torchvision's vgg16 state dict format with random weights, in $TORCH_HOME/hub/checkpoints.

    The classifier tensors (~120 M numbers) are expanded views of one small tensor: torch.save
    keeps the small storage, and loading copies it to the full shapes.
    """
    torch.manual_seed(1)
    state = {f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}
    for i, (n_out, n_in) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        state[f"classifier.{i}.weight"] = (torch.randn(1, 1) * 0.01).expand(n_out, n_in)
        state[f"classifier.{i}.bias"] = torch.zeros(1).expand(n_out)
    path = torch_home / "hub" / "checkpoints" / VGG16_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    write_random_vgg16(home)
    return home


def optimisation(**optimizer) -> dict:
    """conf/model/stage1.yaml's optimiser settings as train.py passes them (the optimiser a partial),
    `optimizer` changing keys of its node."""
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / "stage1.yaml"))
    return {"optimizer": instantiate({**cfg["optimizer"], **optimizer}), "disc_lr": cfg["disc_lr"],
            "grad_clip": cfg["grad_clip"]}


def stage1_overrides(data_root: Path, *extra: str) -> list[str]:
    return [f"data.root={data_root}", f"data.limit.train={N_TRAIN}", f"data.limit.val={N_VAL}",
            f"data.batch_size={BATCH}", "experiment=vqgan", "vqgan=tiny", "trainer=cpu",
            "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
            "+trainer.num_sanity_val_steps=0", "logger=csv", "callbacks.model_summary=null",
            f"model.pictures.num_images={PICTURES}", *extra]


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory, cache_dir, data_root, torch_home):
    """2 steps of LPIPS training on 8 real images, the GAN on from step 1, validated on 4."""
    out = tmp_path_factory.mktemp("stage1")
    cfg = compose_config("train", stage1_overrides(
        data_root, "model.loss.disc.start=1", "model.loss.disc.n_layers=2", "model.loss.disc.channels=16",
        "model.loss.perceptual_weight=0.5"), out, cache_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(torch_home))
        result = train(cfg)
    (metrics,) = out.glob("csv/version_*/metrics.csv")
    with open(metrics) as fh:
        rows = list(csv.DictReader(fh))
    return cfg, result, rows, out


def _values(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


def test_training_run_logs_losses_codebook_metrics_and_pictures(stage1_run):
    cfg, result, rows, out = stage1_run
    steps = N_TRAIN // BATCH
    for key in ("train/rec_loss", "train/codebook_loss", "train/perceptual_loss", "train/loss"):
        assert len(_values(rows, key)) == steps, key
    # the GAN starts at step 1: no generator/discriminator terms at step 0, then every step
    for key in ("train/g_loss", "train/d_loss", "train/adaptive_weight"):
        assert len(_values(rows, key)) == steps - 1, key
    assert all(0 < w < 1e4 for w in _values(rows, "train/adaptive_weight"))
    (val,) = [r for r in rows if r.get("val/rec_loss")]
    assert float(val["val/loss"]) == float(val["val/rec_loss"]) > 0
    k = TINY_VQGAN["num_codebook_vectors"]
    usage, dead = float(val["val/codebook_usage"]), float(val["val/dead_codes"])
    assert 0 < usage <= 1 and dead == pytest.approx(k * (1 - usage))
    assert 1 <= float(val["val/codebook_perplexity"]) <= k * usage + 1e-3
    for key, value in result["metrics"].items():
        assert math.isfinite(value), key

    (picture,) = (out / "pictures").glob("recon_epoch_000_step_*.png")  # one val run
    with Image.open(picture) as im:  # a row of originals above a row of reconstructions
        assert im.size == (PICTURES * 66 + 2, 2 * 66 + 2)
        top = torch.from_numpy(np.array(im))[2:66, 2:66].permute(2, 0, 1)
    first_val = read_image(scan_layout(cfg.data.root, check_images=False).val_files[0])
    assert (top.int() - first_val.int()).abs().max() <= 1  # denormalised original, first val image


def test_checkpoint_is_a_vqgan_file_for_stage_two(stage1_run, tmp_path, cache_dir, data_root):
    cfg, result, rows, out = stage1_run
    last = out / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == {"vqgan", "discriminator"}, prefixes  # no perceptual network, no metric state

    vqgan = build_vqgan({**TINY_VQGAN, "ckpt_path": str(last)})  # strict load
    assert torch.equal(vqgan.codebook.embedding.weight, state["vqgan.codebook.embedding.weight"])

    stage2 = compose_config("train", tiny_train_overrides(data_root, last) + [
        "data.limit.train=16", "data.limit.val=8", "data.batch_size=8", "callbacks.model_checkpoint=null"],
        tmp_path, cache_dir)
    metrics = train(stage2)["metrics"]
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])

    # fine-tuning stage 1 starts from that file's weights
    model = VQGANTraining(vqgan={**TINY_VQGAN, "ckpt_path": str(last)}, loss={"disc": {"enabled": False}},
                          **optimisation())
    assert model.vqgan.training and all(p.requires_grad for p in model.vqgan.parameters())
    assert torch.equal(model.vqgan.codebook.embedding.weight, vqgan.codebook.embedding.weight)


def test_adaptive_weight_is_the_gradient_norm_ratio_at_the_last_layer():
    w = torch.randn(3, 4, requires_grad=True)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    rec, g = (w * a).sum() + 5.0, (w * b).sum() ** 2  # d rec/dw = a, d g/dw = 2 (w.b) b
    expected = a.norm() / ((2 * (w * b).sum() * b).norm() + 1e-4)
    assert adaptive_weight(rec, g, w).item() == pytest.approx(expected.item(), rel=1e-5)
    assert adaptive_weight(rec, (w * 0).sum(), w).item() == 1e4  # |a| / 1e-4 clamped
    assert adaptive_weight((w * 0).sum(), g, w).item() == 0.0


def test_discriminator_is_not_updated_before_disc_start():
    torch.manual_seed(0)
    model = VQGANTraining(vqgan={**TINY_VQGAN, "ckpt_path": None},
                          loss={"disc": {"start": 1, "n_layers": 1, "channels": 8}}, **optimisation())
    initial = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    snapshots = []

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            snapshots.append({k: v.clone() for k, v in pl_module.discriminator.state_dict().items()})

    images = LAB_TRAIN.normalize(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[Snapshot()])
    trainer.fit(model, DataLoader(images, batch_size=1))
    # step 0 < disc.start: weights and BatchNorm statistics untouched (it did not even run)
    assert all(torch.equal(snapshots[0][k], initial[k]) for k in initial)
    assert not torch.equal(snapshots[1]["main.0.weight"], initial["main.0.weight"])  # step 1: trained
    assert trainer.global_step == 2 + 1  # two generator steps, one discriminator step


def test_dead_codes_restart_onto_encoder_outputs_and_used_codes_stay():
    torch.manual_seed(0)
    model = VQGANTraining(vqgan={**TINY_VQGAN, "ckpt_path": None}, loss={"disc": {"enabled": False}},
                          **optimisation(lr=0.0), restart_dead_codes=2)  # lr 0: only restarts move codes
    before = model.vqgan.codebook.embedding.weight.detach().clone()
    images = LAB_TRAIN.normalize(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    with torch.no_grad():
        used = torch.unique(model.vqgan.tokenize(images))  # the codes the two steps will use
        latents = model.vqgan.latents(images[2:]).permute(0, 2, 3, 1).flatten(0, 2)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, DataLoader(images, batch_size=2))

    after = model.vqgan.codebook.embedding.weight.detach()
    moved = (after != before).any(1)
    assert not moved[used].any()  # used codes are kept
    assert moved.sum() == TINY_VQGAN["num_codebook_vectors"] - len(used)  # every dead one restarted
    # ... onto encoder outputs of the second batch (the one at the restart step)
    distances = torch.cdist(after[moved], latents, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert distances.max() < 1e-5


def test_optimisers_are_the_config_node_with_disc_lr_for_the_discriminator():
    torch.manual_seed(0)
    settings = {**optimisation(lr=1e-3), "disc_lr": 5e-4}
    model = VQGANTraining(vqgan={**TINY_VQGAN, "ckpt_path": None},
                          loss={"disc": {"n_layers": 1, "channels": 8}}, **settings)
    opt_g, opt_d = model.configure_optimizers()
    assert type(opt_g) is type(opt_d) is torch.optim.Adam
    assert [g["lr"] for g in opt_g.param_groups] == [1e-3] and [g["lr"] for g in opt_d.param_groups] == [5e-4]
    assert list(opt_g.param_groups[0]["betas"]) == list(opt_d.param_groups[0]["betas"]) == [0.5, 0.9]
    # the checkpoint records the optimiser as plain config, which builds the same optimisers again
    record = dict(model.hparams)
    assert record["optimizer"] == {"_target_": "torch.optim.adam.Adam", "_partial_": True, "lr": 1e-3,
                                   "betas": [0.5, 0.9]}
    assert (record["disc_lr"], record["grad_clip"]) == (5e-4, settings["grad_clip"])
    again = VQGANTraining(**record).configure_optimizers()
    assert [o.param_groups[0]["lr"] for o in again] == [1e-3, 5e-4]
    no_disc_lr = VQGANTraining(**{**record, "disc_lr": None}).configure_optimizers()
    assert [o.param_groups[0]["lr"] for o in no_disc_lr] == [1e-3, 1e-3]  # null: optimizer.lr


def test_codebook_usage_perplexity_and_dead_codes_on_known_histograms():
    metric = CodebookUsage(num_codes=8)
    metric.update(torch.tensor([[0, 0, 1]]))
    metric.update(torch.tensor([1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3]))  # two batches: 2 code 0 ... 3 each
    counts = torch.tensor([4.0, 4, 3, 3])
    p = counts / counts.sum()
    stats = metric.compute()
    assert stats["usage"].item() == 0.5 and stats["dead_codes"].item() == 4
    assert stats["perplexity"].item() == pytest.approx(torch.exp(-(p * p.log()).sum()).item(), rel=1e-6)
    metric.reset()
    metric.update(torch.arange(8).repeat(5))
    assert metric.compute()["perplexity"].item() == pytest.approx(8.0)  # uniform: all K codes
    metric.reset()
    metric.update(torch.full((40,), 5))
    stats = metric.compute()
    assert stats["perplexity"].item() == pytest.approx(1.0) and stats["dead_codes"].item() == 7


def test_perceptual_loss_with_a_vgg16_file_is_frozen_and_outside_the_checkpoint(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    loss = PerceptualLoss(LAB_TRAIN)  # found in $TORCH_HOME/hub/checkpoints
    x = LAB_TRAIN.normalize(torch.rand(2, 3, 64, 64))
    y = (x + 0.3 * torch.randn_like(x)).requires_grad_(True)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    value = loss(y, x)
    value.backward()
    assert value.item() > 0 and y.grad.abs().sum() > 0
    assert not list(loss.parameters()) and not loss.state_dict()

    model = VQGANTraining(vqgan={**TINY_VQGAN, "ckpt_path": None}, loss={"perceptual_weight": 1.0},
                          **optimisation())
    assert all(k.split(".")[0] in ("vqgan", "discriminator") for k in model.state_dict())
    optimised = {id(p) for opt in model.configure_optimizers() for g in opt.param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.parameters()}  # the VGG16 is in no optimiser


@pytest.mark.parametrize("where", ["path", "hub"])
def test_perceptual_loss_without_the_vgg16_file_is_one_line(where, tmp_path, monkeypatch, cache_dir,
                                                           data_root):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    setting = ["model.loss.perceptual_weights=/nowhere/vgg16.pth"] if where == "path" else []
    cfg = compose_config("train", stage1_overrides(data_root, "model.loss.perceptual_weight=1", *setting),
                         tmp_path, cache_dir)
    with pytest.raises(Exception) as info:
        train(cfg)
    message = str(user_error_in(info.value))
    assert "\n" not in message and VGG16_FILE in message and "model.loss.perceptual_weight=0" in message
    expected = "/nowhere/vgg16.pth" if where == "path" else str(tmp_path / "empty_torch_home")
    assert expected in message


@pytest.mark.parametrize("overrides, words", [
    (["model=stage1", "trainer.gradient_clip_val=null"], ["VQGANTraining", "data.serve=images"]),
    (["data.serve=images"], ["MaskGIT", "data.serve=tokens"]),
    (["model=stage1", "data.serve=images"], ["gradient_clip_val=null", "grad_clip"]),
])
def test_model_and_data_of_different_stages_is_one_line(overrides, words, train_cfg):
    with pytest.raises(Exception) as info:
        train(train_cfg(*overrides, "data.limit.train=4", "data.limit.val=4"))
    err = user_error_in(info.value)
    assert isinstance(err, ConfigError) and "\n" not in str(err)
    assert all(w in str(err) for w in words), str(err)

"""Stage-2 training on the real data set: checkpoints, logging, resume, frozen VQGAN, token reuse."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import TINY_VQGAN, TRAINED_RUN
from hydra.utils import instantiate

from maskgit.errors import CheckpointError, ConfigError
from maskgit.models.vqgan import VQGAN
from maskgit.modules.maskgit import MaskGIT
from maskgit.tasks.train import train

STEPS_PER_EPOCH = 256 // 16
EPOCHS = 3


@pytest.fixture(scope="module")
def trained(trained_run):
    """The session's tiny training run (conftest.TRAINED_RUN: 3 epochs of 16 steps, warmup 4)."""
    cfg, result, out = trained_run
    (metrics,) = out.glob("csv/version_*/metrics.csv")
    with open(metrics) as fh:
        rows = list(csv.DictReader(fh))
    return cfg, result, rows, out / "checkpoints" / "last.ckpt"


def test_training_logs_and_checkpoints_without_vqgan_weights(trained):
    cfg, result, rows, last = trained
    for key in ("train/loss", "val/loss", "val/masked_token_accuracy"):
        assert torch.isfinite(torch.tensor(result["metrics"][key])), key
    assert {"train/loss", "val/loss", "val/masked_token_accuracy", "lr"} <= set(rows[0])
    assert Path(result["best_ckpt"]).is_file()

    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert not [k for k in ckpt["state_dict"] if k.startswith("vqgan.")]
    assert any(k.startswith("transformer.") for k in ckpt["state_dict"])
    assert ckpt["maskgit_vqgan"]["ckpt_path"] == cfg.vqgan.ckpt_path
    assert len(ckpt["maskgit_vqgan"]["sha256"]) == 64


def test_training_lowers_validation_loss(trained):
    val = [float(r["val/loss"]) for r in trained[2] if r.get("val/loss")]
    assert len(val) == EPOCHS
    assert val[-1] < val[0] - 0.05, val


def test_lr_warms_up_linearly_then_decays_by_cosine(trained):
    lrs = [float(r["lr"]) for r in trained[2] if r.get("lr")]
    peak = lrs.index(max(lrs))
    assert peak == 4 and max(lrs) == pytest.approx(3e-3)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1], strict=True))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:], strict=False))
    assert lrs[-1] < 0.2 * max(lrs)


def test_resume_continues_step_count_and_schedule(trained, train_cfg):
    cfg = train_cfg(*TRAINED_RUN, f"trainer.max_epochs={EPOCHS + 1}", f"ckpt_path={trained[3]}")
    train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt",
                      map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == (EPOCHS + 1) * STEPS_PER_EPOCH
    (sched,) = ckpt["lr_schedulers"]
    assert sched["last_epoch"] == (EPOCHS + 1) * STEPS_PER_EPOCH  # went on from the checkpoint


def test_vqgan_is_frozen_and_training_never_encodes(trained, train_cfg, monkeypatch):
    cfg = train_cfg("data.limit.train=256")
    model = instantiate(cfg.model)
    assert not any(p.requires_grad for p in model.vqgan.parameters())
    model.train()
    assert model.transformer.training and not model.vqgan.training

    # The module-scoped run filled the token cache: a new run must not run the encoder at all.
    import maskgit.models.vqgan as vqgan_module

    calls = []
    real_forward = vqgan_module.Encoder.forward
    monkeypatch.setattr(vqgan_module.Encoder, "forward",
                        lambda self, x: calls.append(len(x)) or real_forward(self, x))
    train(cfg)
    assert calls == [], "tokens were encoded again although they are cached"


def test_checkpoint_refuses_a_different_vqgan(trained, tmp_path):
    cfg, _, _, last = trained
    torch.manual_seed(123)
    other = tmp_path / "other_vqgan.pt"
    torch.save(VQGAN(**TINY_VQGAN).state_dict(), other)
    with pytest.raises(CheckpointError, match="VQGAN mismatch"):
        MaskGIT.load_from_checkpoint(last, map_location="cpu",
                                     vqgan={**cfg.model.vqgan, "ckpt_path": str(other)})
    model = MaskGIT.load_from_checkpoint(last, map_location="cpu")
    assert model.transformer.tok_emb.weight.shape[0] == TINY_VQGAN["num_codebook_vectors"] + 1


def test_debug_fast_reads_and_encodes_only_its_three_batches(train_cfg, tmp_path):
    """debug=fast runs 3 batches of train and val: only 3 x batch_size images of each are checked
    and encoded (not the whole data set), and the run ends without error."""
    cfg = train_cfg("debug=fast", "data.batch_size=5", "data.limit.train=null", "data.limit.val=null",
                    f"data.cache_dir={tmp_path / 'tokens'}")
    train(cfg)
    caches = sorted(p.name.split("-")[:2] for p in (tmp_path / "tokens").glob("*.pt"))
    assert caches == [["train", "15"], ["val", "15"]]


def test_a_batch_larger_than_the_train_split_is_refused_before_any_work(train_cfg, tmp_path):
    cfg = train_cfg("data.batch_size=200", f"paths.output_dir={tmp_path / 'run'}")  # 128 train images
    with pytest.raises(ConfigError, match=r"data.batch_size=200 is more than the 128 training images"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing encoded, nothing written


def test_a_training_run_records_its_versions(trained_run):
    _, _, out = trained_run
    recorded = json.loads((out / "versions.json").read_text())
    assert recorded["torch"] == torch.__version__ and recorded["lightning"] == L.__version__


class _Hostile:
    """A pickle that would create a file when loaded without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind, message", [
    ("missing", "does not exist (check ckpt_path)"),
    ("truncated", "is not a readable PyTorch weights file"),
    ("random", "is not a readable PyTorch weights file"),
    ("hostile", "is not a readable PyTorch weights file"),
    ("weights only", "is not a train.py checkpoint"),
    ("other stage", "is a checkpoint of another model, not this MaskGIT"),
    ("other size", "does not fit the configured MaskGIT: "),
])
def test_a_bad_checkpoint_to_resume_is_one_line_before_anything_runs(trained, train_cfg, tmp_path,
                                                                     tiny_vqgan_path, kind, message):
    good = trained[3]
    path, extra = tmp_path / f"{kind.replace(' ', '_')}.ckpt", []
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "random":
        path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif kind == "hostile":
        torch.save({"state_dict": _Hostile(tmp_path / "pwned")}, path)
    elif kind == "weights only":
        path = tiny_vqgan_path
    elif kind == "other stage":  # a stage-1 (VQGAN training) checkpoint's shape of state
        vqgan = torch.load(tiny_vqgan_path, weights_only=True)
        state = {**{f"vqgan.{k}": v for k, v in vqgan.items()},
                 "discriminator.model.0.weight": torch.zeros(1)}
        torch.save({"state_dict": state, "global_step": 10, "optimizer_states": []}, path)
    elif kind == "other size":
        path, extra = good, ["model.transformer.dim=64"]
    out = tmp_path / "run"
    cfg = train_cfg(f"ckpt_path={path}", f"paths.output_dir={out}", *extra)
    with pytest.raises(CheckpointError) as raised:
        train(cfg)
    line = str(raised.value)
    assert "\n" not in line and message in line and str(path) in line
    assert not (tmp_path / "pwned").exists()  # nothing executed
    assert not (out / "checkpoints").exists() and not (out / "config_tree.log").exists()  # nothing written

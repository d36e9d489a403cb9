"""train.py as a user runs it: DDP on two CPU processes, and one-line errors for user mistakes."""

from __future__ import annotations

import shutil

import torch
from conftest import run_cli, tiny_train_overrides
from omegaconf import OmegaConf


def test_ddp_on_two_cpu_processes_gives_one_run(tmp_path, data_root, tiny_vqgan_path):
    args = tiny_train_overrides(data_root, tiny_vqgan_path) + [
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "logger=wandb"]
    proc = run_cli("train.py", *args, cwd=tmp_path, env={"MASKGIT_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]

    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()  # one run directory
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one wandb run
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and len(ckpts) == 2  # one best + last, not one set per process
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 128 // (16 * 2)  # batch_size is per device: each process sees half


def _error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return lines[-1]


def test_missing_data_root_is_one_line(tmp_path, tiny_vqgan_path, data_root):
    args = tiny_train_overrides(data_root, tiny_vqgan_path) + [f"data.root={tmp_path / 'nope'}"]
    line = _error_line(run_cli("train.py", *args, cwd=tmp_path))
    assert line.startswith("error: ") and "nope" in line and "does not exist" in line


def test_broken_image_names_the_file(tmp_path, tiny_vqgan_path, data_root):
    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for f in sorted((data_root / split).iterdir())[:4]:
            shutil.copy(f, root / split / f.name)
    (root / "val" / "image_00002.png").write_bytes(b"not an image")
    args = tiny_train_overrides(data_root, tiny_vqgan_path) + [f"data.root={root}"]
    line = _error_line(run_cli("train.py", *args, cwd=tmp_path))
    assert "val/image_00002.png" in line


def test_missing_and_mismatched_vqgan_weights(tmp_path, data_root, tiny_vqgan_path):
    base = tiny_train_overrides(data_root, tiny_vqgan_path)
    line = _error_line(run_cli("train.py", *base, f"vqgan.ckpt_path={tmp_path / 'VQGAN.pt'}", cwd=tmp_path))
    assert "VQGAN.pt" in line and "vqgan.ckpt_path" in line
    line = _error_line(run_cli("train.py", *base, "vqgan=lab", f"vqgan.ckpt_path={tiny_vqgan_path}",
                               cwd=tmp_path))
    assert "does not match" in line and "shape mismatches" in line


def test_unknown_mask_function_lists_valid_ones(tmp_path, data_root, tiny_vqgan_path):
    args = tiny_train_overrides(data_root, tiny_vqgan_path) + ["model.mvtm.mask_func=zigzag"]
    line = _error_line(run_cli("train.py", *args, cwd=tmp_path))
    assert "zigzag" in line and "cosine" in line and "linear" in line


def test_every_config_group_option_composes(tmp_path, cache_dir):
    from conftest import ROOT, compose_config

    conf = ROOT / "conf"
    for group in sorted(p for p in conf.iterdir() if p.is_dir()):
        for option in sorted(group.glob("*.yaml")):
            if group.name in ("hydra",):
                continue
            cfg = compose_config("train", [f"{group.name}={option.stem}"], tmp_path, cache_dir)
            resolved = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
            assert resolved["task_name"] == "train", f"{group.name}={option.stem}"

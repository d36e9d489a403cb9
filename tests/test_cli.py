"""train.py as a user runs it: DDP on two CPU processes, and one-line errors for user mistakes."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import ROOT, run_cli, tiny_train_overrides
from omegaconf import DictConfig, OmegaConf

from maskgit.errors import user_error_in
from maskgit.tasks.train import train
from maskgit.utils.integrity import damage


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_gives_one_run(tmp_path, data_root, tiny_vqgan_path):
    args = tiny_train_overrides(data_root, tiny_vqgan_path) + [
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "logger=wandb"]
    # A user without wandb credentials: no WANDB_MODE, no API key, an empty home (no .netrc).
    (tmp_path / "home").mkdir()
    env = {"MASKGIT_CACHE_DIR": str(tmp_path / "cache"), "WANDB_MODE": None, "WANDB_API_KEY": None,
           "HOME": str(tmp_path / "home")}
    proc = run_cli("train.py", *args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert output.count("wandb: no credentials found, logging offline") == 1  # one line, rank 0 only
    # Quiet: no config dump, no library banners, each message once (not once per process or handler).
    for noise in ("CONFIG", "GPU available", "Seed set to", "💡 Tip", "distributed_backend="):
        assert noise not in output, noise
    assert output.count("`Trainer.fit` stopped") <= 1 and output.count("output dir: ") == 1

    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()  # one run directory
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one wandb run
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and len(ckpts) == 2  # one best + last, not one set per process
    assert all(damage(run_dir / "checkpoints" / name) is None for name in ckpts)  # sealed, by rank 0
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


def _user_error(cfg) -> str:
    """train(cfg) fails with a user error; train.py prints it as this one line and exits 2."""
    with pytest.raises(Exception) as raised:  # noqa: B017 - Hydra may wrap it; unwrapped below
        train(cfg)
    err = user_error_in(raised.value)
    assert err is not None, raised.value
    assert "\n" not in str(err)
    return str(err)


def test_broken_image_names_the_file(tmp_path, train_cfg, data_root):
    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for f in sorted((data_root / split).iterdir())[:4]:
            shutil.copy(f, root / split / f.name)
    (root / "val" / "image_00002.png").write_bytes(b"not an image")
    assert "val/image_00002.png" in _user_error(train_cfg(f"data.root={root}"))


def test_missing_and_mismatched_vqgan_weights(tmp_path, train_cfg, tiny_vqgan_path):
    line = _user_error(train_cfg(f"vqgan.ckpt_path={tmp_path / 'VQGAN.pt'}"))
    assert "VQGAN.pt" in line and "vqgan.ckpt_path" in line
    line = _user_error(train_cfg("vqgan=lab", f"vqgan.ckpt_path={tiny_vqgan_path}"))
    assert "does not match" in line and "shape mismatches" in line
    assert line.endswith("; the file fits vqgan=tiny")  # the config that builds its architecture


def test_unknown_mask_function_lists_valid_ones(train_cfg):
    line = _user_error(train_cfg("model.mvtm.mask_func=zigzag"))
    assert "zigzag" in line and "cosine" in line and "linear" in line


def test_every_config_group_option_composes(tmp_path, cache_dir):
    from conftest import ROOT, compose_config

    conf = ROOT / "conf"
    composed = 0
    for primary in ("train", "eval"):
        groups = {next(iter(d)) for d in OmegaConf.load(conf / f"{primary}.yaml").defaults
                  if isinstance(d, dict | DictConfig)} - {"hydra"}
        for group in sorted(groups):
            for option in sorted((conf / group).glob("*.yaml")):
                extra = ["ckpt_path=x.ckpt"] if primary == "eval" else []
                cfg = compose_config(primary, [f"{group}={option.stem}", *extra], tmp_path, cache_dir)
                resolved = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
                assert resolved["task_name"] == primary, f"{primary}: {group}={option.stem}"
                composed += 1
    assert composed >= 20


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    """The run folder is <time>_<pid>-<random>: resolved once per run (DDP children are handed the
    parent's), different for every run, also within one second."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    dirs = []
    for _ in range(3):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"paths.log_dir={tmp_path}"], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        first = OmegaConf.select(cfg, "hydra.run.dir")
        assert OmegaConf.select(cfg, "hydra.run.dir") == first  # stable within a run
        dirs.append(first)
    GlobalHydra.instance().clear()
    assert len(set(dirs)) == 3 and all(d.startswith(f"{tmp_path}/train/runs/") for d in dirs)

"""Shared fixtures: the real data set (via MASKGIT_DATA_ROOT), weights files made here, configs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import maskgit.config.settings  # noqa: F401  (registers the decoding presets' base, as eval.py does)
from maskgit.models.vqgan import VQGAN

ROOT = Path(__file__).resolve().parents[1]
TINY_VQGAN = dict(image_channels=3, enc_channels=[32, 32, 32, 64, 64, 64],
                  dec_channels=[32, 32, 64, 64, 64], latent_dim=64, img_resolution=64,
                  latent_resolution=16, num_codebook_vectors=128, beta=0.25)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """$MASKGIT_SHARED_DIR/fixtures: the lab's key lists and the reference decodings (see its README)."""
    value = os.environ.get("MASKGIT_SHARED_DIR")
    if not value:
        pytest.skip("MASKGIT_SHARED_DIR is not set: no lab fixtures to check compatibility against")
    shared = Path(value)
    if not shared.is_dir():
        pytest.skip(f"MASKGIT_SHARED_DIR={value} is not a folder: no lab fixtures")
    return shared / "fixtures"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("MASKGIT_DATA_ROOT")
    if not root or not Path(root).is_dir():
        pytest.skip("the real cat_face data set is not available: set MASKGIT_DATA_ROOT")
    return Path(root)


@pytest.fixture(scope="session")
def tiny_vqgan_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny VQGAN saved as a plain state dict, the lab's VQGAN.pt format."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_vqgan.pt"
    torch.save(VQGAN(**TINY_VQGAN).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One token/statistics cache for the whole session, as a user's runs would share it."""
    return tmp_path_factory.mktemp("cache")


def compose_config(name: str, overrides: list[str], output_dir: Path, cache_dir: Path) -> DictConfig:
    """The real Hydra config `name` with overrides, paths pointed at test folders."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(output_dir)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.cache_dir = str(cache_dir)
        del cfg.hydra
    return cfg


def tiny_train_overrides(data_root: Path, vqgan_path: Path) -> list[str]:
    """A tiny, CPU, few-step training run on the real data set (128 train / 32 val images)."""
    return [f"data.root={data_root}", "data.limit.train=128", "data.limit.val=32",
            "data.batch_size=16", "vqgan=tiny", f"vqgan.ckpt_path={vqgan_path}", "model=tiny",
            "trainer=cpu", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
            "trainer.enable_progress_bar=false", "logger=csv", "callbacks.model_summary=null"]


@pytest.fixture
def train_cfg(tmp_path: Path, cache_dir: Path, data_root: Path,
              tiny_vqgan_path: Path) -> Callable[..., DictConfig]:
    """`train_cfg(*overrides)`: the tiny training config, writing into this test's tmp_path."""

    def make(*overrides: str) -> DictConfig:
        base = tiny_train_overrides(data_root, tiny_vqgan_path)
        return compose_config("train", base + list(overrides), tmp_path, cache_dir)

    return make


def run_cli(script: str, *args: str, cwd: Path, timeout: float = 300,
            env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """Run train.py / eval.py as a user would; `env` values of None remove the variable."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The genuine FID Inception weights, converted from the installed package into a test folder."""
    from maskgit.metrics.inception import default_weights

    return default_weights(tmp_path_factory.mktemp("inception"))


TRAINED_RUN = ["data.limit.train=256", "trainer.max_epochs=3", "model.scheduler.warmup_steps=4",
               "model.optimizer.lr=3e-3"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, data_root: Path,
                tiny_vqgan_path: Path) -> tuple[DictConfig, dict, Path]:
    """One real tiny training run on the real data set (3 epochs of 16 steps, warmup 4 steps),
    shared by the training tests (its logs) and the evaluation tests (its checkpoint)."""
    from maskgit.tasks.train import train

    out = tmp_path_factory.mktemp("trained")
    cfg = compose_config("train", tiny_train_overrides(data_root, tiny_vqgan_path) + TRAINED_RUN,
                         out, cache_dir)
    return cfg, train(cfg), out


@pytest.fixture(scope="session")
def trained_ckpt(trained_run: tuple[DictConfig, dict, Path]) -> Path:
    return trained_run[2] / "checkpoints" / "last.ckpt"


def eval_overrides(ckpt: Path, data_root: Path, inception: Path, n_test: int = 24) -> list[str]:
    """Evaluate on the first `n_test` real test images, CPU, FID with the genuine Inception weights.

    FID uses Inception's 64-d layer here: the same code path as the standard 2048-d one
    (tests/test_fid.py covers 2048), with 20 bootstrap replicates instead of 100. Codes are drawn at
    temperature 1: the most likely code of a model trained for a few steps is one code everywhere,
    which would hide what decoding does.
    """
    return [f"ckpt_path={ckpt}", "temperature=1.0", f"data.root={data_root}", f"data.limit.test={n_test}",
            "data.batch_size=8", f"metrics.fid.weights_path={inception}", "metrics.fid.features=64",
            "metrics.fid.bootstrap=20", "trainer=cpu",
            "trainer.enable_progress_bar=false", "logger=csv", "pictures.num_images=2",
            "pictures.grid_images=4"]

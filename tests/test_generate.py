"""eval.py task=generate: unconditional samples from a fully masked canvas, grid, FID, determinism."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import compose_config, eval_overrides
from PIL import Image

from maskgit.data.images import read_image
from maskgit.decoding.iterative import DecodeSettings
from maskgit.errors import MaskGITError
from maskgit.sweeps.points import PointStore
from maskgit.tasks.eval import evaluate

N = 6


def _args(ckpt, data_root, inception, *extra: str) -> list[str]:
    return eval_overrides(ckpt, data_root, inception) + [
        "task=generate", f"generate.num_samples={N}", "total_iter=3", "data.limit.val=16",
        "pictures.num_images=1", *extra]


def _samples(folder) -> list[torch.Tensor]:
    return [read_image(folder / "generated" / f"sample_{i:04d}.png") for i in range(N)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory, cache_dir, data_root, trained_ckpt, inception_weights):
    out = tmp_path_factory.mktemp("generate")
    cfg = compose_config("eval", _args(trained_ckpt, data_root, inception_weights), out, cache_dir)
    report = evaluate(cfg)
    return out, report


def test_writes_samples_grid_and_metrics_with_fid(generated):
    out, report = generated
    assert sorted(p.name for p in (out / "generated").iterdir()) == [f"sample_{i:04d}.png" for i in range(N)]
    assert not (out / "generated.partial").exists() and not (out / "test_results").exists()
    with Image.open(out / "generated" / "sample_0003.png") as img:
        assert img.size == (64, 64) and img.mode == "RGB"
    assert sorted(p.name for p in (out / "pictures").iterdir()) == ["progression_000.png", "samples.png"]
    with Image.open(out / "pictures" / "samples.png") as img:  # one row of 6, 2-pixel padding
        assert img.size == (2 + N * 66, 2 + 66)
    with Image.open(out / "pictures" / "progression_000.png") as img:  # the canvas + 3 steps
        assert img.size == (2 + 4 * 66, 4 + 2 * 64)

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(report["metrics"])
    assert set(saved["metrics"]) == {"fid", "fid_ci95_low", "fid_ci95_high", "kid_mean", "kid_std"}
    assert math.isfinite(saved["metrics"]["fid"])
    assert saved["metrics"]["fid_ci95_low"] < saved["metrics"]["fid"] < saved["metrics"]["fid_ci95_high"]
    assert saved["metrics"]["fid"] > 0
    assert saved["task"] == "generate" and saved["num_samples"] == N and saved["decoded_now"] == N
    assert saved["fid"]["reference"] == "val" and saved["fid"]["reference_images"] == 16
    assert saved["fid"]["features"] == 64 and saved["fid"]["resize"] == "torch-fidelity"
    assert {"decode", "vqgan_decode", "features", "reference_stats", "total"} <= set(saved["timings_s"])
    assert saved["config"]["generate"]["num_samples"] == N and saved["versions"]["torch"]


def test_samples_are_generated_not_copied_and_differ(generated, data_root):
    out, _ = generated
    samples = _samples(out)
    assert len({s.numpy().tobytes() for s in samples}) > 1
    val = read_image(sorted((data_root / "val").iterdir())[0])
    assert all((s.float() - val.float()).abs().mean() > 1 for s in samples)


def test_same_seed_same_samples_whatever_the_batch_other_seed_others(generated, tmp_path, cache_dir,
                                                                      data_root, trained_ckpt,
                                                                      inception_weights):
    out, _ = generated
    quiet = ["metrics.fid.enabled=false", "pictures.num_images=0", "generate.grid_images=0"]
    again = evaluate(compose_config("eval", _args(trained_ckpt, data_root, inception_weights, *quiet,
                                                  "data.batch_size=4"), tmp_path / "again", cache_dir))
    assert again["metrics"] == {} and not (tmp_path / "again" / "pictures" / "samples.png").exists()
    for a, b in zip(_samples(out), _samples(tmp_path / "again"), strict=True):
        assert torch.equal(a, b)
    evaluate(compose_config("eval", _args(trained_ckpt, data_root, inception_weights, *quiet, "seed=1"),
                            tmp_path / "seed1", cache_dir))
    assert any(not torch.equal(a, b) for a, b in zip(_samples(out), _samples(tmp_path / "seed1"),
                                                      strict=True))


def test_sweep_point_key_holds_the_task_and_the_samples(tmp_path, cache_dir, data_root, trained_ckpt,
                                                        inception_weights):
    def key(*extra: str) -> str:
        cfg = compose_config("eval", _args(trained_ckpt, data_root, inception_weights, *extra), tmp_path,
                             cache_dir)
        return PointStore(cfg, DecodeSettings(total_iter=3)).key

    base = key()
    assert base == key("pictures.num_images=0", "data.batch_size=2")  # presentation only
    others = {key("task=inpaint"), key("generate.num_samples=7"), key("generate.fid_reference_limit=8"),
              key("data.limit.val=20")}
    assert base not in others and len(others) == 4
    assert key("masks.source=box") == base  # masks do not matter when generating


@pytest.mark.parametrize("extra, message", [
    (["task=paint"], "unknown task 'paint'; valid: inpaint, generate"),
    (["generate.num_samples=0"], "generate.num_samples must be a positive integer, got 0"),
    (["generate.num_samples=1"], "FID needs at least 2 samples"),
])
def test_bad_generate_settings_are_one_line(tmp_path, cache_dir, data_root, trained_ckpt, inception_weights,
                                            extra, message):
    with pytest.raises(MaskGITError) as err:
        evaluate(compose_config("eval", _args(trained_ckpt, data_root, inception_weights, *extra), tmp_path,
                                cache_dir))
    assert "\n" not in str(err.value) and str(err.value).startswith(message), str(err.value)
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "generated").exists()

"""The quickstart in its reduced form: stage 1 -> stage 2 on its tokens -> inpainting, on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_config, run_cli
from PIL import Image

from maskgit.errors import ConfigError
from maskgit.models.checkpoint import build_vqgan
from maskgit.tasks.quickstart import compose_stage, run_quickstart, stage_overrides

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.slow
def test_reduced_quickstart_runs_every_stage_on_the_previous_ones_output(tmp_path, cache_dir, data_root,
                                                                        inception_weights):
    """python quickstart.py reduced=true, as a user runs it (CI's smoke run of the whole pipeline):
    every stage as two DDP processes on CPU, each stage on the previous one's checkpoint, each
    logging to its own offline wandb run (a user without wandb credentials)."""
    result = run_cli(
        "quickstart.py", "reduced=true", "fid=true",
        f"common=['data.root={data_root}','trainer.enable_progress_bar=false']",
        f"stages.eval=['total_iter=4','metrics.fid.weights_path={inception_weights}','metrics.fid.features=64']",
        cwd=tmp_path, env={"MASKGIT_CACHE_DIR": str(cache_dir), "WANDB_MODE": None})  # no credentials
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "quickstart" / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert "quickstart (reduced)" in result.stdout  # the summary table
    vqgan_ckpt = summary["stages"]["vqgan"]["checkpoint"]
    assert vqgan_ckpt.startswith(str(run / "vqgan"))
    assert {"val/rec_loss", "val/codebook_usage"} <= set(summary["stages"]["vqgan"]["metrics"])
    assert list((run / "vqgan" / "pictures").glob("recon_epoch_*.png"))

    # Stage 2 trained on stage 1's VQGAN: its checkpoint names it and eval loaded it.
    eval_report = json.loads((run / "eval" / "metrics.json").read_text())
    assert eval_report["vqgan"]["ckpt_path"] == vqgan_ckpt
    build_vqgan({**eval_report["vqgan"]["config"], "ckpt_path": vqgan_ckpt})  # a VQGAN file
    assert "val/masked_token_accuracy" in summary["stages"]["transformer"]["metrics"]

    metrics = summary["stages"]["eval"]["metrics"]
    assert summary["stages"]["eval"]["num_images"] == 16
    assert 0.0 <= metrics["masked_token_accuracy"] <= 1.0 and metrics["hole_psnr"] > 0
    assert metrics["fid"] >= 0
    assert len(list((run / "eval" / "test_results").glob("image_*.png"))) == 16
    assert (run / "eval" / "pictures" / "grid.png").is_file()
    with Image.open(run / "baselines" / "pictures" / "baselines.png") as img:  # ours, 6 baselines, truth
        assert img.size[1] == 2 + 8 * 66
    assert set(summary["seconds"]) == {"vqgan", "transformer", "eval", "baselines", "total"}
    # the run's result beside the baselines, on the same 16 images, all with FID intervals
    comparison = summary["comparison"]
    methods = [m["method"] for m in comparison]
    assert methods[0] == "maskgit (this run)" and "telea" in methods and "vqgan_ceiling" in methods
    assert all("fid_ci95_low" in m and "ssim" in m for m in comparison)
    assert "inpainting beside the baselines" in result.stdout
    assert summary["verdict"].startswith("On the lab's masks: this run ")  # beats them, or not, said
    assert summary["verdict"] in " ".join(result.stdout.split())
    assert (run / "comparison.md").read_text().count("\n| ") == 1 + len(comparison)
    for stage in ("vqgan", "transformer", "eval"):
        assert len(list((run / stage / "wandb").glob("offline-run-*"))) == 1, stage


def test_fid_takes_true_or_false_as_eval_does(tmp_path, cache_dir):
    cfg = compose_config("quickstart", ["fid=auto"], tmp_path, cache_dir)
    with pytest.raises(ConfigError, match="fid must be true or false"):
        run_quickstart(cfg, CONF_DIR)


@pytest.mark.parametrize("config", ["quickstart", "quickstart_2h"])
@pytest.mark.parametrize("processes", [1, 2, 4])
def test_processes_split_the_same_images_per_step(tmp_path, cache_dir, processes, config):
    """python quickstart.py processes=N: N DDP processes (1: one plain process), same batch per step."""
    cfg = compose_config(config, [f"processes={processes}"], tmp_path, cache_dir)
    for stage in ("vqgan", "transformer"):
        stage_cfg = compose_stage(CONF_DIR, "train", stage_overrides(cfg, stage), cfg, stage)
        assert stage_cfg.data.batch_size * processes == cfg.batch_size[stage]
        assert stage_cfg.trainer.devices == processes and stage_cfg.trainer.accelerator == "cpu"
        assert stage_cfg.trainer.get("strategy", "auto") == ("ddp" if processes > 1 else "auto")
    eval_cfg = compose_stage(CONF_DIR, "eval", ["ckpt_path=x.ckpt", *stage_overrides(cfg, "eval")], cfg,
                             "eval")
    assert eval_cfg.trainer.devices == processes and eval_cfg.temperature == 0.5


@pytest.mark.parametrize("overrides, words", [
    (["processes=0"], "processes must be a positive integer"),
    (["processes=3"], "batch_size.vqgan=16 does not split evenly over processes=3"),
    (["batch_size.transformer=1"], "batch_size.transformer=1 does not split evenly over processes=2"),
])
def test_bad_process_settings_are_one_line(tmp_path, cache_dir, overrides, words):
    cfg = compose_config("quickstart", overrides, tmp_path, cache_dir)
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        for stage in ("vqgan", "transformer"):
            stage_overrides(cfg, stage)

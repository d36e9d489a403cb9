"""The quickstart in its reduced form: stage 1 -> stage 2 on its tokens -> inpainting, on real data."""

from __future__ import annotations

import json

from conftest import ROOT, compose_config
from omegaconf import open_dict

from maskgit.models.checkpoint import build_vqgan
from maskgit.tasks.quickstart import fid_available, run_quickstart


def test_reduced_quickstart_runs_every_stage_on_the_previous_ones_output(tmp_path, cache_dir, data_root,
                                                                        inception_weights):
    cfg = compose_config("quickstart", [
        "reduced=true", "fid=auto",
        f"common=['logger=csv','data.root={data_root}','trainer.enable_progress_bar=false']",
        f"stages.eval=['trainer=cpu','metrics.fid.weights_path={inception_weights}','metrics.fid.features=64']",
    ], tmp_path, cache_dir)
    with open_dict(cfg):
        cfg.paths.log_dir = str(tmp_path / "logs")
    summary = run_quickstart(cfg, ROOT / "conf")

    assert json.loads((tmp_path / "summary.json").read_text())["stages"] == summary["stages"]
    vqgan_ckpt = summary["stages"]["vqgan"]["checkpoint"]
    assert vqgan_ckpt.startswith(str(tmp_path / "vqgan"))
    assert {"val/rec_loss", "val/codebook_usage"} <= set(summary["stages"]["vqgan"]["metrics"])
    assert (tmp_path / "vqgan" / "pictures").glob("recon_epoch_*.png")

    # Stage 2 trained on stage 1's VQGAN: its checkpoint names it and eval loaded it.
    transformer_cfg = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert transformer_cfg["vqgan"]["ckpt_path"] == vqgan_ckpt
    arch = {k: v for k, v in transformer_cfg["vqgan"]["config"].items()}
    build_vqgan({**arch, "ckpt_path": vqgan_ckpt})  # the stage-1 checkpoint is a VQGAN file
    assert "val/masked_token_accuracy" in summary["stages"]["transformer"]["metrics"]

    metrics = summary["stages"]["eval"]["metrics"]
    assert summary["stages"]["eval"]["num_images"] == 16
    assert 0.0 <= metrics["masked_token_accuracy"] <= 1.0 and metrics["hole_psnr"] > 0
    assert metrics["fid"] >= 0  # fid=auto found the weights file
    assert len(list((tmp_path / "eval" / "test_results").glob("image_*.png"))) == 16
    assert (tmp_path / "eval" / "pictures" / "grid.png").is_file()
    assert set(summary["seconds"]) == {"vqgan", "transformer", "eval", "total"}


def test_fid_auto_skips_fid_when_the_weights_cannot_be_had(tmp_path, cache_dir):
    cfg = compose_config("eval", ["ckpt_path=x.ckpt", f"metrics.fid.weights_path={tmp_path / 'no.pth'}"],
                         tmp_path, cache_dir)
    assert fid_available(cfg) is False

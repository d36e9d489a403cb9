"""eval.py task=baselines: classical inpainting and the VQGAN ceiling in eval.py's metrics."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import compose_config, run_cli
from PIL import Image

from maskgit.data.images import read_image, read_mask
from maskgit.models import baseline_fills as baselines
from maskgit.tasks.eval import evaluate

N = 16


@pytest.fixture(scope="module")
def real(data_root):
    """The first N real test images: masked input, known pixels, ground truth."""
    masked = torch.stack([read_image(data_root / "masked_image" / f"image_{i:03d}.png") for i in range(N)])
    known = torch.stack([read_mask(data_root / "mask64" / f"mask_{i:03d}.png") for i in range(N)])
    truth = torch.stack([read_image(data_root / "gt" / f"image_{i:03d}.png") for i in range(N)])
    return masked, known, truth


@pytest.mark.parametrize("method", sorted(baselines.CLASSICAL))
def test_every_method_keeps_the_known_pixels(real, method):
    masked, known, _ = real
    out = baselines.CLASSICAL[method](masked, known)
    assert out.dtype == torch.uint8 and out.shape == masked.shape
    k = known[:, None].expand_as(masked)
    assert torch.equal(out[k], masked[k])


def test_mean_colour_fills_each_hole_with_its_images_known_mean(real):
    masked, known, _ = real
    out = baselines.mean_colour(masked, known)
    for image, filled, k in zip(masked, out, known, strict=True):
        mean = image[:, k].float().mean(1).round().to(torch.uint8)
        assert torch.equal(filled[:, ~k], mean[:, None].expand(3, int((~k).sum())))


def test_classical_inpainting_beats_gray_holes_in_the_holes(real):
    masked, known, truth = real

    def hole_error(images):
        return (images.float() - truth.float()).abs()[(~known)[:, None].expand_as(images)].mean()

    gray = hole_error(masked)
    assert hole_error(baselines.CLASSICAL["telea"](masked, known)) < gray / 2
    assert hole_error(baselines.CLASSICAL["navier_stokes"](masked, known)) < gray / 2


def test_baselines_task_writes_table_picture_and_metrics(tmp_path, cache_dir, data_root, tiny_vqgan_path,
                                                         inception_weights):
    perfect = tmp_path / "perfect" / "test_results"  # a run that inpainted every hole exactly
    perfect.mkdir(parents=True)
    for i in range(N):
        (perfect / f"image_{i:03d}.png").write_bytes((data_root / "gt" / f"image_{i:03d}.png").read_bytes())
    cfg = compose_config("eval", [f"baselines.results={{perfect:{perfect.parent}}}",
        "task=baselines", f"data.root={data_root}", f"data.limit.test={N}", "vqgan=tiny",
        f"vqgan.ckpt_path={tiny_vqgan_path}", f"metrics.fid.weights_path={inception_weights}",
        "metrics.fid.features=64", "metrics.fid.bootstrap=20", "logger=csv", "baselines.picture_images=4",
        "masks.source=box"], tmp_path, cache_dir)
    report = evaluate(cfg)
    rows = report["metrics"]
    perfect_row = rows.pop("perfect")  # a result row comes first, scored like the methods
    assert perfect_row["hole_l1"] == 0 and perfect_row["ssim"] == pytest.approx(1.0)
    assert perfect_row["fid"] < min(m["fid"] for m in rows.values())
    assert list(rows) == ["masked_input", "mean_colour", "telea", "navier_stokes", "vqgan_ceiling",
                          "vqgan_ceiling_composite"]
    for m in rows.values():
        assert m["fid_ci95_low"] < m["fid"] < m["fid_ci95_high"] and m["kid_std"] > 0
        assert 0 < m["ssim"] <= 1 and m["hole_psnr"] > 0 and "fid_unseen" in m
    # pasting the known pixels back changes only the known region: the hole metrics are the same
    assert rows["vqgan_ceiling_composite"]["hole_psnr"] == pytest.approx(rows["vqgan_ceiling"]["hole_psnr"])
    assert rows["vqgan_ceiling_composite"]["ssim"] > rows["vqgan_ceiling"]["ssim"]
    assert rows["telea"]["hole_psnr"] > rows["mean_colour"]["hole_psnr"] > rows["masked_input"]["hole_psnr"]

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["masks"]["source"] == "box" and saved["num_images"] == N
    assert saved["fid"]["features"] == 64 and len(saved["fid"]["weights_sha256"]) == 64
    assert saved["versions"]["torch"] == torch.__version__  # what reproducibility depends on
    table = (tmp_path / "baselines.md").read_text().splitlines()
    assert table[2].startswith("| method | FID [95% interval]") and len(table) == 5 + len(rows)
    with open(tmp_path / "baselines.csv") as fh:
        records = list(csv.DictReader(fh))
    assert [r["method"] for r in records] == ["perfect", *rows]
    assert float(records[3]["fid"]) == pytest.approx(rows["telea"]["fid"])
    with Image.open(tmp_path / "pictures" / "baselines.png") as img:  # 7 rows + ground truth, 4 images
        assert img.size == (150 + 2 + 4 * 66, 2 + 8 * 66)  # a 150-pixel column of row names


def test_baselines_without_a_vqgan_leave_the_ceiling_out(tmp_path, data_root):
    proc = run_cli("eval.py", "task=baselines", f"data.root={data_root}", "data.limit.test=8",
                   "metrics.fid.enabled=false", "logger=csv", "vqgan.ckpt_path=null", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no VQGAN given" in proc.stdout + proc.stderr
    (run,) = (tmp_path / "logs" / "eval" / "runs").iterdir()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["methods"] == ["masked_input", "mean_colour", "telea", "navier_stokes"]
    assert "fid" not in saved["metrics"]["telea"]


def test_a_results_folder_without_the_test_images_is_one_line(tmp_path, data_root):
    (tmp_path / "run" / "test_results").mkdir(parents=True)
    proc = run_cli("eval.py", "task=baselines", f"data.root={data_root}", "data.limit.test=4",
                   "metrics.fid.enabled=false", "vqgan.ckpt_path=null", "logger=csv",
                   f"baselines.results={{ours:{tmp_path / 'run'}}}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: baselines.results: {tmp_path / 'run' / 'test_results'} lacks 4 of the 4 test images")


def test_an_unknown_method_is_one_line(tmp_path, data_root):
    proc = run_cli("eval.py", "task=baselines", f"data.root={data_root}", "baselines.methods=[telea,magic]",
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: baselines.methods: unknown ['magic']")

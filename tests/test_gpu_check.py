"""The GPU check and the benchmark figures it reports, run in their tiny CPU modes so they cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maskgit.models.transformer import BidirectionalTransformer
from maskgit.utils.perf import Grid, count_flops, peak_memory

ROOT = Path(__file__).resolve().parents[1]


def test_flop_count_equals_the_transformers_matmuls():
    """Per layer: Q, K, V, O (4 L d^2 MACs), scores and mixing (2 L^2 d), MLP (2 L d h); then the
    head's Linear (L d^2) and the tied logits (L d V). One multiply-add = 2 FLOPs."""
    length, d, h, layers, codes = 16, 32, 64, 3, 50
    model = BidirectionalTransformer(num_image_tokens=length, num_codebook_vectors=codes, dim=d,
                                     n_layers=layers, hidden_dim=h, num_heads=4, dropout=0.0)
    macs = layers * (4 * length * d * d + 2 * length * length * d + 2 * length * d * h)
    macs += length * d * d + length * d * (codes + 1)
    with torch.no_grad():
        assert count_flops(lambda: model(torch.zeros(1, length, dtype=torch.long))) == 2 * macs
        assert count_flops(lambda: model(torch.zeros(3, length, dtype=torch.long))) == 6 * macs


def test_grid_counts_every_step_of_every_point():
    grid = Grid()
    assert grid.points == 84 and grid.transformer_steps == 3 * sum(range(1, 29)) == 1218
    assert grid.seconds(1.0, 0.0) == 747 * 1218 and grid.seconds(0.0, 1.0) == 747 * 84


def test_peak_memory_reports_the_process_on_a_cpu():
    before = peak_memory(torch.device("cpu"))
    block = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
    after = peak_memory(torch.device("cpu"))
    assert before["kind"] == "cpu_peak_rss" and after["gib"] >= before["gib"] > 0
    del block


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.slow
@pytest.mark.scripts  # its own CI step: the default suite stays under 10 min on 2 cores
def test_gpu_check_tiny_runs_every_section_and_writes_both_reports(tmp_path):
    proc = run_script("bash", "benchmarks/gpu_check.sh", "--tiny", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["skipped"] == []
    real = bool(os.environ.get("MASKGIT_DATA_ROOT"))
    assert (report["images"] != "random images") == real
    train, decoded, grid = report["train"], report["decode"], report["grid"]
    assert train["compile_off"]["images_per_s"] > 0 and train["flops_per_image"] > 0
    assert train["compile_off"]["epoch_s"] == pytest.approx(12_000 / train["compile_off"]["images_per_s"])
    assert decoded["steps_timed"] == 3 * 3 and decoded["s_per_image_step"] > 0  # 3 schedules at T=3
    assert decoded["flops_per_image_step"] > 0 and decoded["peak_memory"]["gib"] > 0
    assert report["inception"]["images"] == 6
    assert grid["points"] == 9 and grid["seconds"] > 0
    assert report["ddp"] == {**report["ddp"], "backend": "gloo", "world_size": 2,
                             "gradients_equal_on_ranks": True}
    sweep = report["sweep"]  # the tiny sweep through hydra/launcher=gpus, Ray told of 2 GPUs
    if "skipped" not in sweep:  # needs the ray extra (CI installs it)
        assert sweep["gpus"] == [1, 2] and sweep["2_gpu"]["gpu_ids"] == ["0", "1"]
        assert sweep["1_gpu"]["gpu_ids"] == ["0"] and sweep["1_gpu"]["points"] == 2
        assert sweep["1_gpu"]["points_per_min"] > 0 and sweep["speedup"] > 0
    text = (tmp_path / "gpu_check.md").read_text()
    assert "stage-2 epoch, 12,000 images (compile off)" in text and "3 x 28 FID grid" in text


def test_decode_batch_size_benchmark_reports_each_size(tmp_path):
    out = tmp_path / "decode.json"
    proc = run_script(sys.executable, "benchmarks/decode_batch_sizes.py", "--model", "tiny",
                      "--vqgan", "tiny", "--batch-sizes", "1", "3", "--batches", "1", "--total-iter", "2",
                      "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["batch_size"] for r in report["rows"]] == [1, 3]
    assert all(r["images_per_s"] > 0 and r["tflops"] > 0 for r in report["rows"])

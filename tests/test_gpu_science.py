"""benchmarks/gpu_science.sh --tiny: the prepared GPU science run, every stage on the CPU with tiny
models, its report rewritten after each stage."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str, cache_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "benchmarks/gpu_science.sh", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900,
                          env={**os.environ, "WANDB_MODE": "offline", "MASKGIT_CACHE_DIR": str(cache_dir)})


@pytest.mark.slow
@pytest.mark.scripts  # its own CI step: the default suite stays under 10 min on 2 cores
def test_tiny_run_goes_through_every_stage_and_reports_each(tmp_path, cache_dir):
    proc = run_script("--tiny", "--out", str(tmp_path), cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["seconds"]) == {"vqgan", "transformer", "holes"}
    for stage in ("vqgan", "transformer"):  # trained to the steps asked, validated
        assert report["stages"][stage]["steps"] == report["stages"][stage]["max_steps"] == 4
        assert "val/loss" in report["stages"][stage]["val"]
    # stage 2 read stage 1's VQGAN; the holes stage scored stage 2's model beside the baselines
    transformer = (tmp_path / "transformer" / ".hydra" / "overrides.yaml").read_text()
    assert str(tmp_path / "vqgan" / "checkpoints" / "last.ckpt") in transformer
    holes = json.loads((tmp_path / "holes" / "summary.json").read_text())
    assert {r["hole"] for r in holes["rows"]} == {"box_05", "box_25", "box_60", "lab"}
    assert {r["method"] for r in holes["rows"]} == {"gpu", "mean_colour", "telea", "navier_stokes",
                                                    "vqgan_ceiling_composite"}
    text = (tmp_path / "report.md").read_text()
    assert "| transformer |" in text and "| gpu |" in text and "Crossover" in text


def test_a_bad_argument_is_one_line(tmp_path, cache_dir):
    proc = run_script("--fast", cache_dir=cache_dir)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown argument --fast (use --out DIR, --tiny)"

"""The report of benchmarks/gpu_science.sh from what its stages have written so far.

    python benchmarks/gpu_science_report.py gpu_science/    # -> report.md, report.json

Per stage: wall seconds; the training stages' last validation metrics and the steps reached (a stage
stopped by its time cap shows fewer steps than asked); the hole-size table and crossover.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from maskgit.utils.atomic import atomic_path, save_json


def training(run: Path) -> dict[str, Any] | None:
    """Steps reached (the newest checkpoint's), steps asked for and the last validation metrics of a
    train.py run folder."""
    logs = sorted(run.glob("csv/version_*/metrics.csv"))
    if not logs:
        return None
    with open(logs[-1]) as fh:
        rows = list(csv.DictReader(fh))
    val = [r for r in rows if any(k.startswith("val/") and r[k] for k in r)]
    last = {k: float(v) for k, v in (val[-1] if val else {}).items() if k.startswith("val/") and v}
    steps = max((int(m.group(1)) for f in run.glob("checkpoints/*.ckpt")
                 if (m := re.search(r"step_(\d+)", f.name))), default=0)
    config = run / ".hydra" / "config.yaml"
    asked = OmegaConf.load(config).trainer.get("max_steps") if config.is_file() else None
    return {"steps": steps, "max_steps": asked, "val": last}


def build(out: Path) -> dict[str, Any]:
    seconds = {}
    if (out / "seconds.txt").is_file():
        lines = (out / "seconds.txt").read_text().splitlines()
        seconds = {name: int(s) for name, s in (line.split() for line in lines)}
    gpu = (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").is_file() else None
    report: dict[str, Any] = {"gpu": gpu, "seconds": seconds, "stages": {}}
    for stage in ("vqgan", "transformer"):
        if (found := training(out / stage)) is not None:
            report["stages"][stage] = found
    summary = out / "holes" / "summary.json"
    if summary.is_file():
        holes = json.loads(summary.read_text())
        report["stages"]["holes"] = {"crossovers": holes["crossovers"], "table": holes["table"]}
    return report


def markdown(report: dict[str, Any], out: Path) -> str:
    lines = ["# gpu_science report", "", f"GPU: {report['gpu'] or 'none (CPU)'}", "",
             "| stage | seconds | steps (asked) | last validation |", "|---|---:|---:|---|"]
    for stage in ("vqgan", "transformer", "holes"):
        s = report["stages"].get(stage, {})
        steps = f"{s['steps']} ({s['max_steps']})" if "steps" in s else ""
        val = ", ".join(f"{k} {v:.4g}" for k, v in s.get("val", {}).items())
        lines.append(f"| {stage} | {report['seconds'].get(stage, '')} | {steps} | {val} |")
    lines.append(f"| total | {sum(report['seconds'].values())} | | |")
    table = out / "holes" / "hole_size.md"
    if table.is_file():
        lines += ["", table.read_text()]
    return "\n".join(lines) + "\n"


def main(out: Path) -> None:
    report = build(out)
    save_json(report, out / "report.json")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown(report, out))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: python benchmarks/gpu_science_report.py <gpu_science output folder>", file=sys.stderr)
        sys.exit(2)
    main(Path(sys.argv[1]))

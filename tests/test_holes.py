"""python holes.py: the hole-size study (models beside the baselines per hole setting), its outputs,
its crossover rule and its one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import run_cli
from PIL import Image

from maskgit.data.images import read_mask
from maskgit.data.layout import scan_layout
from maskgit.sweeps.hole_curve import crossovers

METHODS = ["mean_colour", "telea", "navier_stokes", "vqgan_ceiling_composite"]
DROPPED = ["box_15", "box_25", "box_40", "strokes_w4", "strokes_w8", "strokes_w16"]


@pytest.mark.slow
def test_two_models_beside_the_baselines_at_every_hole(tmp_path, trained_ckpt, data_root, cache_dir,
                                                       inception_weights):
    """The same checkpoint under two names: identical rows (same images, masks and seeds), beside
    every method at a small box, a large box and the data set's own masks; fractions measured."""
    n = 16
    result = run_cli(
        "holes.py", f"+models.first={trained_ckpt}", f"+models.second={trained_ckpt}",
        *[f"~holes.{h}" for h in DROPPED], "picture_holes=[box_05,box_60]", "picture_images=3",
        "eval=['temperature=1.0']",
        f"common=['data.root={data_root}','data.limit.test={n}','metrics.fid.weights_path={inception_weights}',"
        "'metrics.fid.features=64','metrics.fid.bootstrap=20','trainer=cpu',"
        "'trainer.enable_progress_bar=false','logger=csv']",
        cwd=tmp_path, env={"MASKGIT_CACHE_DIR": str(cache_dir)}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "holes" / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    rows = summary["rows"]
    assert [(r["hole"], r["method"]) for r in rows] == [
        (h, m) for h in ("box_05", "box_60", "lab") for m in ("first", "second", *METHODS)]
    by = {(r["hole"], r["method"]): r for r in rows}
    for hole in ("box_05", "box_60", "lab"):
        first, second = by[hole, "first"], by[hole, "second"]
        assert {k: v for k, v in first.items() if k != "method"} == {k: v for k, v in second.items()
                                                                      if k != "method"}
        assert all("fid_ci95_low" in by[hole, m] and "kid_mean" in by[hole, m] for m in METHODS)
        assert first["kind"] == "maskgit" and by[hole, "telea"]["kind"] == "classical"

    # the hole fraction is the masks' own: boxes in their area range, the data set's mask files
    assert 0.04 <= by["box_05", "telea"]["fraction"] <= 0.06
    assert 0.55 <= by["box_60", "telea"]["fraction"] <= 0.65
    masks = scan_layout(data_root, splits=("test",), limit={"test": n}).mask_files
    lab = float(torch.stack([~read_mask(f) for f in masks]).float().mean())
    assert by["lab", "telea"]["fraction"] == pytest.approx(lab, abs=1e-4)
    # the large holes are harder for every method
    assert all(by["box_60", m]["hole_psnr"] < by["box_05", m]["hole_psnr"] for m in ("first", "telea"))

    assert set(summary["crossovers"]) == {"first", "second"}
    assert set(summary["crossovers"]["first"]) == {"box", "dataset"}
    with open(run / "hole_size.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    table = (run / "hole_size.md").read_text()
    assert "| telea |" in table and "Crossover" in table
    with Image.open(run / "holes.png") as img:  # masked input, 2 models, 4 methods, ground truth
        assert img.size[1] == 16 + 8 * 66 + 2
    assert (run / "hole_size.png").stat().st_size > 10_000
    # each run is eval.py's own, in the study's folder
    assert json.loads((run / "box_60" / "baselines" / "metrics.json").read_text())["task"] == "baselines"
    assert len(list((run / "box_60" / "first" / "test_results").glob("image_*.png"))) == n
    assert "hole-size study:" in result.stdout


@pytest.mark.parametrize("args, message", [
    ([], "needs at least one model"),
    (["+models.x=/no/such.ckpt"], "model checkpoint not found: x=/no/such.ckpt"),
    (["+models.telea=/no/such.ckpt"], "model checkpoint not found"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    result = run_cli("holes.py", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").rglob("summary.json"))


def _row(hole: str, fraction: float, method: str, kind: str, low: float, high: float,
         series: str = "box") -> dict:
    return {"hole": hole, "series": series, "fraction": fraction, "method": method, "kind": kind,
            "fid": (low + high) / 2, "fid_ci95_low": low, "fid_ci95_high": high, "hole_psnr": 14.0}


def test_the_crossover_is_where_the_model_stays_clear_of_every_classical_interval():
    rows = []
    for hole, f, ours, mean_colour, telea in [
            ("a", 0.05, (30, 40), (50, 60), (10, 20)),      # Telea better: not clear
            ("b", 0.15, (30, 40), (50, 60), (35, 45)),      # overlaps Telea: not clear
            ("c", 0.25, (30, 40), (41, 50), (60, 70)),      # clear of both
            ("d", 0.40, (30, 40), (39, 50), (60, 70)),      # overlaps mean colour: not clear
            ("e", 0.60, (30, 40), (45, 55), (60, 70))]:     # clear
        rows += [_row(hole, f, "ours", "maskgit", *ours),
                 _row(hole, f, "mean_colour", "classical", *mean_colour),
                 _row(hole, f, "telea", "classical", *telea),
                 _row(hole, f, "masked_input", "classical", 0, 1),  # never a method to beat
                 _row(hole, f, "vqgan_ceiling_composite", "ceiling", 0, 1)]  # nor the ceiling
    got = crossovers(rows, ["ours"])["ours"]["box"]
    assert got == {"from_fraction": 0.60, "from_hole": "e", "clear_at": ["c", "e"],
                   "measured_at": ["a", "b", "c", "d", "e"]}

    # a study merged from runs over different holes: each model is read on the holes it was measured on
    partial = [r for r in rows if not (r["method"] == "ours" and r["hole"] in "de")]
    got = crossovers(partial, ["ours"])["ours"]["box"]
    assert got == {"from_fraction": 0.25, "from_hole": "c", "clear_at": ["c"], "measured_at": ["a", "b", "c"]}

    rows = [r for r in rows if r["hole"] != "e"]  # clear at c, not at the largest: nowhere from
    assert crossovers(rows, ["ours"])["ours"]["box"]["from_hole"] is None
    no_fid = [{k: v for k, v in r.items() if not k.startswith("fid")} for r in rows]
    assert crossovers(no_fid, ["ours"]) == {"ours": {}}


def test_the_verdict_line_says_whether_the_run_beats_every_classical_method():
    from maskgit.sweeps.hole_curve import verdict

    def m(low, high):
        return {"fid": (low + high) / 2, "fid_ci95_low": low, "fid_ci95_high": high}

    rows = {"ours": m(30, 40), "mean_colour": m(45, 55), "telea": m(60, 70), "vqgan_ceiling": m(1, 2)}
    assert verdict(rows, "ours", "On box holes").startswith("On box holes: this run beats every classical")
    rows["navier_stokes"] = m(10, 20)
    line = verdict(rows, "ours", "On the lab's masks")
    assert "does not beat" in line and "navier_stokes 15.0" in line and "holes.py" in line
    assert verdict({"ours": {"hole_psnr": 14.0}}, "ours", "Here") == "Here: no FID intervals to compare"


def test_runs_merge_into_one_study_with_a_ceiling_per_vqgan(tmp_path):
    from maskgit.sweeps.hole_curve import main

    def study(folder, model, ceiling_fid):
        rows = [_row("a", 0.05, model, "maskgit", 30, 40), _row("a", 0.05, "telea", "classical", 10, 20),
                _row("a", 0.05, "vqgan_ceiling_composite", "ceiling", ceiling_fid, ceiling_fid + 1),
                _row("b", 0.6, model, "maskgit", 30, 40), _row("b", 0.6, "telea", "classical", 50, 60),
                _row("b", 0.6, "vqgan_ceiling_composite", "ceiling", ceiling_fid, ceiling_fid + 1)]
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(
            {"rows": rows, "config": {"models": {model: "x.ckpt"}, "ceiling_model": None}}))
        return folder

    main([str(study(tmp_path / "one", "quick", 5)), str(study(tmp_path / "two", "long", 3)),
          "--out", str(tmp_path / "both")])
    merged = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert [(r["hole"], r["method"]) for r in merged["rows"]] == [
        (h, m) for h in "ab" for m in ("quick", "long", "telea", "vqgan_ceiling_composite (quick)",
                                       "vqgan_ceiling_composite (long)")]
    assert merged["crossovers"]["long"]["box"]["from_hole"] == "b"
    assert (tmp_path / "both" / "hole_size.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2


def test_a_published_study_csv_merges_with_a_new_run(tmp_path, capsys):
    """The published hole_size.csv (whose runs' folders are on another machine) merges with a new run:
    each (hole, method) once, the first source's; the csv's models and named ceiling rows kept as they are."""
    from maskgit.sweeps.hole_curve import main, read_rows

    published = tmp_path / "published"
    published.mkdir()
    with open(published / "hole_size.csv", "w", newline="") as fh:  # blank cells: numbers not kept
        writer = csv.writer(fh)
        writer.writerow(["hole", "series", "fraction", "method", "kind", "fid", "fid_ci95_low",
                         "fid_ci95_high", "kid_mean", "kid_std", "hole_psnr", "hole_l1", "ssim"])
        writer.writerow(["a", "box", 0.05, "long", "maskgit", 12, 11, 13, 0.001, "", 17.5, "", ""])
        writer.writerow(["a", "box", 0.05, "telea", "classical", 99, 98, 100, "", "", 19.5, "", ""])
        writer.writerow(["a", "box", 0.05, "vqgan_ceiling_composite (long)", "ceiling", 4, 3, 5, "", "",
                         24, "", ""])
    new = tmp_path / "new"
    new.mkdir()
    rows = [_row("a", 0.05, "quick", "maskgit", 30, 40), _row("a", 0.05, "telea", "classical", 10, 20),
            _row("b", 0.6, "quick", "maskgit", 30, 40), _row("b", 0.6, "telea", "classical", 50, 60)]
    (new / "summary.json").write_text(json.dumps({"rows": rows, "config": {"models": {"quick": "x.ckpt"}}}))

    main([str(new), str(published / "hole_size.csv"), "--out", str(tmp_path / "merged")])
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    by = {(r["hole"], r["method"]): r for r in merged["rows"]}
    assert sorted(by) == [("a", "long"), ("a", "quick"), ("a", "telea"),
                          ("a", "vqgan_ceiling_composite (long)"), ("b", "quick"), ("b", "telea")]
    assert by[("a", "telea")]["fid"] == 15  # the new run's, given first
    assert by[("a", "long")] == {"hole": "a", "series": "box", "fraction": 0.05, "method": "long",
                                 "kind": "maskgit", "fid": 12.0, "fid_ci95_low": 11.0, "fid_ci95_high": 13.0,
                                 "kid_mean": 0.001, "hole_psnr": 17.5}
    assert set(merged["crossovers"]) == {"quick", "long"}
    # long is judged against the telea row kept (the new run's [10, 20]): not clear, and only at a
    assert merged["crossovers"]["long"]["box"] == {"from_fraction": None, "from_hole": None, "clear_at": [],
                                                   "measured_at": ["a"]}
    # merging the merged study's own csv again changes nothing
    main([str(tmp_path / "merged" / "hole_size.csv"), "--out", str(tmp_path / "again")])
    assert read_rows(tmp_path / "again" / "hole_size.csv") == read_rows(tmp_path / "merged" / "hole_size.csv")

    (tmp_path / "other.csv").write_text("name,fid\nx,1\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "other.csv"), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    damaged = (tmp_path / "merged" / "hole_size.csv").read_text().replace(",12.0,", ",twelve,")
    (tmp_path / "damaged.csv").write_text(damaged)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "damaged.csv"), "--out", str(tmp_path / "y")])
    assert exit_info.value.code == 2 and "damaged.csv, line " in capsys.readouterr().err

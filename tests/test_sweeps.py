"""Sweeps as a user runs them: `eval.py -m` on the real test set, the FID table, resuming, launchers."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, compose_config, run_cli, tiny_train_overrides

from maskgit.decoding.iterative import MASK_SCHEDULES, DecodeSettings, decode
from maskgit.errors import ConfigError
from maskgit.sweeps.points import key_parts, point_key
from maskgit.sweeps.syntax import expand_ranges, require_override
from maskgit.sweeps.table import main as fid_table
from maskgit.sweeps.table import points_table


def written_eventually(path: Path, *needles: bytes, within_s: float = 30.0) -> bool:
    """True once the file holds every needle. wandb's service can still be flushing a run's
    transaction log (in its own process) when `run.finish()` returns in ours; CI saw the header only."""
    deadline = time.monotonic() + within_s
    while True:
        data = path.read_bytes()
        if all(n in data for n in needles) or time.monotonic() > deadline:
            return all(n in data for n in needles)
        time.sleep(0.2)


# -- the a..b syntax ---------------------------------------------------------------------------------

def test_ranges_become_hydra_sweeps():
    argv = ["eval.py", "-m", "mask_func=linear,cosine,square", "total_iter=1..28", "sweet_spot=-1..2",
            "+x=5..5", "y=1..3,8"]
    assert expand_ranges(argv) == ["eval.py", "-m", "mask_func=linear,cosine,square",
                                   "total_iter=range(1,29)", "sweet_spot=range(-1,3)", "+x=range(5,6)",
                                   "y=1,2,3,8"]
    untouched = ["eval.py", "data.root=..", "ckpt_path=../runs/last.ckpt", "total_iter=range(1,4)",
                 "name=a..b", "q='1..3'", "--cfg", "job", "hydra.run.dir=/tmp/x..y"]
    assert expand_ranges(untouched) == untouched


@pytest.mark.parametrize("item", ["total_iter=3..1", "total_iter=1.5..3", "total_iter=1..x", "t=1..3,9..8"])
def test_bad_ranges_are_refused(item):
    with pytest.raises(ConfigError, match=item.split("=")[0]):
        expand_ranges(["eval.py", item])


def test_bad_range_on_the_command_line_is_one_line(tmp_path):
    proc = run_cli("eval.py", "-m", "ckpt_path=x.ckpt", "total_iter=8..2", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == ("error: total_iter=8..2: empty range, the end 2 is below the start 8 "
                                   "(a..b includes both ends: total_iter=2..8?)")


# -- points that are the same decoding ------------------------------------------------------------------

def test_point_keys_follow_the_test_files_content_not_the_folder(tmp_path, cache_dir):
    """Masks or ground truth changed in place give new keys (no stale "skipped" results); the same
    files in another folder give the same key."""
    from maskgit.data.synthetic import make_synthetic_dataset

    root = make_synthetic_dataset(tmp_path / "data", 4, 4, 6, seed=1)

    def key(data_root: Path, *extra: str) -> str:
        overrides = ["ckpt_path=x.ckpt", f"data.root={data_root}", "metrics.fid.enabled=false", *extra]
        cfg = compose_config("eval", overrides, tmp_path / "out", cache_dir)
        return point_key(key_parts(cfg, DecodeSettings()))

    first = key(root)
    assert key(Path(shutil.copytree(root, tmp_path / "moved"))) == first  # content, not path
    assert key(root, "data.limit.test=5") != first
    mask = root / "mask64" / "mask_003.png"
    mask.write_bytes((root / "mask64" / "mask_004.png").read_bytes())  # a mask changed in place
    second = key(root)
    assert second != first
    (root / "gt" / "image_000.png").write_bytes((root / "gt" / "image_001.png").read_bytes())
    assert key(root) not in (first, second)
    (root / "train" / "image_00000.png").unlink()  # a split the point does not read
    assert key(root) == key(root)


def test_equal_decodings_have_equal_keys_and_equal_tokens():
    torch.manual_seed(0)
    weights = torch.randn(17, 16)

    def logits_fn(t):  # (B, L) tokens, 16 = masked -> (B, L, 16) logits
        return weights[t]

    tokens, masked = torch.randint(0, 16, (3, 20)), torch.rand(3, 20) < 0.6
    seeds = torch.arange(3)

    def result(mask_func="cosine", total_iter=8, sweet_spot=-1, temp=4.5, conf="prob", sampling=1.0):
        settings = DecodeSettings(mask_func, total_iter, sweet_spot, temp, conf, sampling)
        out = decode(logits_fn, tokens, masked, settings, num_codes=16, seeds=seeds).tokens
        return settings.canonical(), out

    one_step = [result(m, 1) for m in MASK_SCHEDULES] + [result("linear", 6, 1, 1.0, "logprob"),
                                                          result("square", 3, 1)]
    for key, tokens_ in one_step:
        assert key == one_step[0][0] and torch.equal(tokens_, one_step[0][1])
    colder = result("cosine", 1, sampling=0.0)  # the sampling temperature matters even in one step
    assert colder[0] != one_step[0][0] and not torch.equal(colder[1], one_step[0][1])
    # sweet_spot=T runs all T steps: the full decoding
    assert result("cosine", 5, 5)[0] == result("cosine", 5, -1)[0]
    assert torch.equal(result("cosine", 5, 5)[1], result("cosine", 5, -1)[1])
    assert result("cosine", 5, 3)[0] != result("cosine", 5, -1)[0]
    assert result("cosine", 5)[0] != result("linear", 5)[0] != result("linear", 6)[0]
    # a field that cannot change the result leaves the key alone; one that can changes it
    assert DecodeSettings(order="halton", confidence="logprob").canonical() == DecodeSettings(
        order="halton").canonical()
    assert DecodeSettings(guidance_schedule="linear").canonical() == DecodeSettings().canonical()
    assert DecodeSettings(seed=1).canonical() != DecodeSettings().canonical()
    growing = {"guidance": 2.0, "guidance_schedule": "linear"}  # w_t = w (t+1)/T: T matters in one step
    assert (DecodeSettings(total_iter=1, **growing).canonical()
            != DecodeSettings(total_iter=2, sweet_spot=1, **growing).canonical())


# -- real sweeps through the command line -------------------------------------------------------------

@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_root, tiny_vqgan_path, cache_dir, inception_weights) -> dict:
    """A tiny model trained briefly by the real train(), and the random Inception file for FID."""
    from maskgit.tasks.train import train

    out = tmp_path_factory.mktemp("sweep_train")
    base = tiny_train_overrides(data_root, tiny_vqgan_path)
    overrides = [o for o in base if not o.startswith("data.limit")]
    train(compose_config("train", overrides + ["data.limit.train=32", "data.limit.val=16"], out, cache_dir))
    return {"ckpt": out / "checkpoints" / "last.ckpt", "inception": inception_weights, "data_root": data_root}


def eval_args(setup: dict, *extra: str, fid: bool = True, logger: str = "csv") -> list[str]:
    """Eight real test images on the CPU; FID from the 192-d Inception layer (the 2048-d FID's
    matrix square root costs 10-30 s per point here, and test_fid covers it)."""
    return ["-m", f"ckpt_path={setup['ckpt']}", "temperature=1.0", f"data.root={setup['data_root']}",
            "data.limit.test=8",
            "data.batch_size=8", f"metrics.fid.weights_path={setup['inception']}",
            f"metrics.fid.enabled={str(fid).lower()}", "metrics.fid.unseen_subset=false",
            "metrics.fid.features=192", "trainer=cpu", "trainer.enable_progress_bar=false",
            f"logger={logger}", "pictures.num_images=0", "pictures.grid_images=0", *extra]


def run_sweep(cwd: Path, args: list[str]) -> tuple[Path, list[dict]]:
    """Run `eval.py -m`; the new multirun folder and its points' metrics.json, by job number."""
    before = set((cwd / "logs/eval/multiruns").glob("*")) if (cwd / "logs/eval/multiruns").is_dir() else set()
    proc = run_cli("eval.py", *args, cwd=cwd, env={"MASKGIT_CACHE_DIR": str(cwd / "cache")}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = set((cwd / "logs/eval/multiruns").glob("*")) - before
    jobs = sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return sweep, [json.loads((j / "metrics.json").read_text()) for j in jobs]


@pytest.mark.slow
def test_fid_grid_table_and_rerun(setup, tmp_path):
    sweep, points = run_sweep(tmp_path, eval_args(setup, "mask_func=linear,cosine,square", "total_iter=1..3"))

    grid = [(p["config"]["mask_func"], p["config"]["total_iter"]) for p in points]
    assert grid == [(m, t) for m in ("linear", "cosine", "square") for t in (1, 2, 3)]
    assert all("fid" in p["metrics"] and p["num_images"] == 8 for p in points)
    # total_iter=1 is the same decoding for every mask function: computed once, then reused
    computed = [p for p in points if not p["skipped"]]
    reused = [p for p in points if p["skipped"]]
    assert [(p["config"]["mask_func"], p["config"]["total_iter"]) for p in reused] == [("cosine", 1),
                                                                                      ("square", 1)]
    assert all(p["decoded_now"] == 8 for p in computed) and all(p["decoded_now"] == 0 for p in reused)
    assert {p["reused_from"] for p in reused} == {str(sweep / "0")}
    assert {p["metrics"]["fid"] for p in reused} == {points[0]["metrics"]["fid"]}
    # the test set is encoded and the ground-truth statistics computed once for the whole sweep
    logs = "".join((sweep / str(i) / "eval.log").read_text() for i in range(9))
    assert logs.count("encoding 8 test images") == 1
    assert len(list((tmp_path / "cache" / "fid").glob("inception_features_*.pt"))) == 1

    assert fid_table([str(sweep), "--wandb", "off"]) == 0
    table = (sweep / "fid_table.md").read_text()
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| mask_func \\ total_iter | 1 | 2 | 3 |"
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| linear", "| cosine", "| square"]
    best = min(p["metrics"]["fid"] for p in points)
    bold = [c for r in rows[1:] for c in r.split(" | ") if c.startswith("**")]
    assert bold and all(float(c.strip("*| ").split()[0]) == pytest.approx(best, abs=0.01) for c in bold)
    assert all(" [" in c for r in rows[1:] for c in r.split(" | ")[1:])  # every cell has its interval
    with open(sweep / "fid_table.csv") as fh:
        records = list(csv.DictReader(fh))
    assert [r["status"] for r in records] == ["done"] * 3 + ["reused", "done", "done"] * 2
    assert float(records[4]["fid"]) == points[4]["metrics"]["fid"]
    assert (sweep / "fid_vs_total_iter.png").stat().st_size > 0
    assert (sweep / "decode_time_vs_total_iter.png").stat().st_size > 0

    # a half-finished sweep: the missing point is a blank cell and a "missing" row
    partial = tmp_path / "partial"
    shutil.copytree(sweep, partial, ignore=shutil.ignore_patterns("test_results", "fid_*"))
    (partial / "5" / "metrics.json").unlink()
    fid_table([str(partial), "--wandb", "off"])
    assert "8/9 points done" in (partial / "fid_table.md").read_text()
    cosine = next(r for r in (partial / "fid_table.md").read_text().splitlines() if r.startswith("| cosine"))
    assert cosine.endswith("|  |")
    with open(partial / "fid_table.csv") as fh:
        assert [r["status"] for r in csv.DictReader(fh)][5] == "missing"
    # running a sweep again reuses its finished points: test_faults.py (after a kill) and the next test


@pytest.mark.slow
def test_parallel_launcher_then_a_bigger_grid_on_wandb(setup, tmp_path, monkeypatch):
    args = eval_args(setup, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "mask_func=linear,cosine",
                     "total_iter=2", fid=False)
    sweep, points = run_sweep(tmp_path, args)  # two points at once, in two joblib worker processes
    assert [p["config"]["mask_func"] for p in points] == ["linear", "cosine"]
    assert all(not p["skipped"] and p["decoded_now"] == 8 for p in points)

    # a bigger grid later: the two finished points are reused, only the new one is computed
    grown_dir, grown = run_sweep(tmp_path, eval_args(setup, "mask_func=linear,cosine,square", "total_iter=2",
                                                     fid=False, logger="wandb"))
    assert [p["skipped"] for p in grown] == [True, True, False]
    assert [p["reused_from"] for p in grown[:2]] == [str(sweep / "0"), str(sweep / "1")]
    # each point that runs is its own wandb run, grouped by the sweep folder's name
    assert {p["config"]["logger"]["wandb"]["group"] for p in grown} == {grown_dir.name}
    (run,) = (grown_dir / "2" / "wandb").glob("offline-run-*/run-*.wandb")
    assert grown_dir.name.encode() in run.read_bytes() and b"2-square-T2" in run.read_bytes()

    # the table's summary run lands in the same group
    monkeypatch.setenv("WANDB_MODE", "offline")  # it is made in this process
    assert fid_table([str(grown_dir)]) == 0
    (summary,) = (grown_dir / "wandb").glob("offline-run-*/run-*.wandb")
    assert written_eventually(summary, grown_dir.name.encode(), b"fid-table")


@pytest.mark.slow
def test_three_axes_in_parallel_workers_equal_one_process_and_skip_what_does_not_exist(setup, tmp_path):
    """sweet_spot descending, beside total_iter and mask_func, in two joblib workers (each with its own
    step memory): every point equals the one-process sweep's; sweet_spot > total_iter is n/a."""
    grid = ["mask_func=linear,cosine", "total_iter=2,3", "sweet_spot=3,2,1"]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one_dir, one = run_sweep(tmp_path / "one", eval_args(setup, *grid, fid=False))
    two_dir, two = run_sweep(tmp_path / "two", eval_args(setup, "hydra/launcher=parallel",
                                                         "hydra.launcher.n_jobs=2", *grid, fid=False))
    coords = [(p["config"]["mask_func"], p["config"]["total_iter"], p["config"]["sweet_spot"]) for p in one]
    assert coords == [(m, t, s) for m in ("linear", "cosine") for t in (2, 3) for s in (3, 2, 1)]
    na = [c for c, p in zip(coords, one, strict=True) if p.get("not_applicable")]
    assert na == [("linear", 2, 3), ("cosine", 2, 3)]
    assert all(p["metrics"] == {} and "decoded_now" not in p for p in one if p.get("not_applicable"))
    # the same tokens; pixels through the VQGAN agree to float rounding (a worker's thread count
    # changes the convolutions' summation order, so a pixel can round the other way)
    for a, b in zip(two, one, strict=True):
        assert a["metrics"].get("masked_token_accuracy") == b["metrics"].get("masked_token_accuracy")
        assert a["metrics"] == pytest.approx(b["metrics"], rel=1e-4)
    assert all(p["metrics"]["hole_psnr"] > 0 for p in one if not p.get("not_applicable"))

    assert fid_table([str(two_dir), "--wandb", "off"]) == 0
    table = (two_dir / "fid_table.md").read_text()
    assert "10/10 points done (2 n/a by rule: sweet_spot > total_iter)" in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| mask_func \\ total_iter | 2 | 3 |"
    for row in rows[1:]:  # each cell: the best PSNR over its sweet spots, and which one
        mask_func = row.split(" | ")[0].strip("| ")
        for t, cell in zip((2, 3), row.split(" | ")[1:], strict=True):
            psnr = max(p["metrics"]["hole_psnr"] for c, p in zip(coords, two, strict=True)
                       if c[:2] == (mask_func, t) and not p.get("not_applicable"))
            assert cell.strip("*| ").startswith(f"{psnr:.2f} dB; acc ") and " @" in cell
    assert (two_dir / "hole_psnr_vs_sweet_spot.png").stat().st_size > 0
    with open(two_dir / "fid_table.csv") as fh:
        assert [r["status"] for r in csv.DictReader(fh)].count("n/a") == 2
    assert fid_table([str(two_dir), "--wandb", "off", "--cols", "sweet_spot"]) == 0
    per_t = (two_dir / "fid_table.md").read_text()
    assert "## total_iter=2" in per_t and per_t.count("| n/a |") == 2


def test_multirun_refuses_ddp_in_one_line(tmp_path):
    nothing = {"ckpt": tmp_path / "last.ckpt", "inception": tmp_path / "i.pth", "data_root": tmp_path}
    args = eval_args(nothing, "mask_func=linear,cosine", "trainer.devices=2")
    proc = run_cli("eval.py", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: trainer.devices=2 in a multirun")
    assert "hydra/launcher=parallel" in lines[0]
    assert not list(tmp_path.rglob("metrics.json"))


# -- the config files ------------------------------------------------------------------------------------

def test_sweep_and_launcher_configs_compose(tmp_path, cache_dir):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    def hydra_cfg(*overrides: str):
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("eval", overrides=list(overrides), return_hydra_config=True).hydra

    for name, size in (("schedule_grid", 84), ("sweet_spot_grid", 36)):
        sweeper = hydra_cfg(f"hydra/sweeper={name}").sweeper
        assert sweeper._target_.endswith("BasicSweeper")
        params = [f"{k}={v}" for k, v in sweeper.params.items()]
        (points,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
        assert len(points) == size, name
    parallel = hydra_cfg("hydra/launcher=parallel").launcher
    assert parallel._target_.endswith("JoblibLauncher") and parallel.n_jobs == 2
    assert hydra_cfg("hydra/launcher=parallel", "hydra.launcher.n_jobs=3").launcher.n_jobs == 3
    slurm = hydra_cfg("hydra/launcher=slurm").launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.gpus_per_node == 1
    assert OmegaConf.to_container(slurm)  # every field is plain YAML

    spec = yaml.safe_load((ROOT / "sweeps" / "wandb_train.yaml").read_text())
    assert spec["program"] == "train.py" and spec["command"][-1] == "${args_no_hyphens}"
    overrides = [f"{k}={v['values'][0] if 'values' in v else v['min']}"
                 for k, v in spec["parameters"].items()]
    fixed = [c for c in spec["command"] if "=" in c and not c.startswith("$")]
    cfg = compose_config("train", fixed + overrides, tmp_path, cache_dir)  # each key is a real config path
    assert OmegaConf.select(cfg, "model.optimizer.lr") == spec["parameters"]["model.optimizer.lr"]["min"]


@pytest.mark.parametrize("argv, fails", [
    (["eval.py"], True),
    (["eval.py", "trainer=cpu", "-m", "total_iter=1..3"], True),
    (["eval.py", "ckpt_path=a.ckpt"], False),
    (["eval.py", "+ckpt_path=a.ckpt"], False),
    (["eval.py", "task=baselines"], False),
    (["eval.py", "task=generate"], True),
    (["eval.py", "--help"], False),
    (["eval.py", "--config-name", "other"], False),
])
def test_a_missing_required_override_fails_before_hydra(argv, fails):
    check = lambda: require_override(argv, "ckpt_path", "ckpt_path is required",  # noqa: E731
                                     unless={"task": "baselines"})
    if fails:
        with pytest.raises(ConfigError, match="ckpt_path is required"):
            check()
    else:
        check()


def test_a_partial_sweep_makes_a_wandb_table():
    """Done points have numbers, pending ones None: the table takes both (it raised TypeError)."""
    header = ["status", "total_iter", "fid", "dir"]
    rows = [["pending", 2, None, None], ["done", 4, 181.9, "/x/0"], ["pending", 8, None, None],
            ["done", 12, 180.5, "/x/2"]]
    table = points_table(header, rows)
    assert table.columns == header and len(table.data) == 4 and table.data[2][2] is None

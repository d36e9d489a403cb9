"""Fault injection through the real command lines: kill -9 at random moments of training, evaluation
and a sweep, then run again; damage each kind of file the project writes; start two runs at once.

The kill moments are drawn from MASKGIT_FAULT_SEED (default 0), so a failure can be replayed and
other seeds tried: `MASKGIT_FAULT_SEED=7 pytest -m faults`. The default `pytest` leaves this suite out
(pyproject.toml); CI runs it as its own step.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TRAINED_RUN, compose_config, eval_overrides, tiny_train_overrides
from test_integrity import corrupt

from maskgit.utils.integrity import seal_path

pytestmark = [pytest.mark.slow, pytest.mark.faults]  # run with: pytest -m faults
FAULT_SEED = int(os.environ.get("MASKGIT_FAULT_SEED", "0"))
STEPS = 3 * 256 // 16  # conftest.TRAINED_RUN: 3 epochs of 16 steps


def command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / script), *args]


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "MASKGIT_CACHE_DIR": str(cache),
            "MASKGIT_PROGRESS": "0"}


def run(cmd: list[str], cwd: Path, cache: Path) -> None:
    """Run to completion; it must succeed."""
    proc = subprocess.run(cmd, cwd=cwd, env=environment(cache), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def run_killed(cmd: list[str], cwd: Path, cache: Path, after_s: float, when=None) -> str:
    """Start `cmd`, kill -9 it `after_s` seconds in, or as soon as `when()` is true; how it ended."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=environment(cache), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.perf_counter() + after_s
    while proc.poll() is None:
        if time.perf_counter() >= deadline or (when is not None and when()):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return f"killed after {after_s:.1f} s" if when is None else "killed at the moment looked for"
        time.sleep(0.002)
    return "finished before the kill"


def kill_moment(name: str, first: float, last: float) -> float:
    """A moment between `first` and `last` seconds into a run (start-up takes about 6 s on 2 cores),
    drawn from MASKGIT_FAULT_SEED."""
    return random.Random(f"{FAULT_SEED}-{name}").uniform(first, last)


def runs(cwd: Path, task: str, kind: str = "runs") -> list[Path]:
    folder = cwd / "logs" / task / kind
    return sorted(folder.iterdir()) if folder.is_dir() else []


def stray(*folders: Path) -> list[Path]:
    """Partial files a killed writer left behind (`.<name>.<pid>.<random>.tmp`)."""
    return [p for f in folders if f.exists() for p in f.rglob(".*.tmp")]


def last_val_loss(run_dir: Path) -> float:
    (metrics,) = run_dir.glob("csv/version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    return [float(r["val/loss"]) for r in rows if r.get("val/loss")][-1]


# --- training ------------------------------------------------------------------------------------
# The uninterrupted run is the session's tiny training (conftest.trained_run); the killed one is the
# same command line; the run again resumes from the killed run's last.ckpt (in process: the same
# code as `python train.py ... ckpt_path=...`).

@pytest.fixture
def train_args(data_root, tiny_vqgan_path) -> list[str]:
    return [*tiny_train_overrides(data_root, tiny_vqgan_path), *TRAINED_RUN]


@pytest.mark.parametrize("moment", ["random", "while a checkpoint is written", "after the final checkpoint"])
def test_training_killed_then_resumed_ends_identical(tmp_path, cache_dir, train_args, trained_run, moment):
    from maskgit.tasks.train import train

    reference = trained_run[2]

    def writing_a_checkpoint() -> bool:
        folders = [d / "checkpoints" for d in runs(tmp_path, "train")]
        return any(f.is_dir() and any(p.suffix == ".tmp" for p in f.iterdir()) for f in folders)

    seen: dict[Path, int] = {}

    def wrote_its_final_checkpoint() -> bool:
        """last.ckpt holds the last step: the run is in its teardown (a fast machine's random kill hit it)."""
        for last in (d / "checkpoints" / "last.ckpt" for d in runs(tmp_path, "train")):
            stamp = last.stat().st_mtime_ns if last.exists() else None
            if stamp is not None and seen.get(last) != stamp:
                seen[last] = stamp
                if torch.load(last, weights_only=True)["global_step"] == STEPS:
                    return True
        return False

    watch = {"random": None, "while a checkpoint is written": writing_a_checkpoint,
             "after the final checkpoint": wrote_its_final_checkpoint}[moment]
    how = run_killed(command("train.py", *train_args), tmp_path, cache_dir,
                     kill_moment("train", 8, 30) if watch is None else 300, when=watch)
    killed = runs(tmp_path, "train")  # none when killed before Hydra made its folder
    last = killed[0] / "checkpoints" / "last.ckpt" if killed else None
    again = [f"ckpt_path={last}"] if last and last.exists() else []  # killed before its first checkpoint
    resumed = tmp_path / "again"
    cfg = compose_config("train", [*train_args, *again], resumed, cache_dir)
    cfg.paths.log_dir = str(tmp_path / "logs")  # the log folder of the killed run, as on the command line
    train(cfg)
    if not (resumed / "checkpoints").exists():
        # Resuming trains nothing only when the killed run had written its final checkpoint: it finished,
        # or the kill came during its teardown. That checkpoint must then equal the uninterrupted run's.
        how += ", after its final checkpoint" if how != "finished before the kill" else ""
        resumed = killed[0]

    want = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == want["global_step"] == STEPS, how
    assert got["lr_schedulers"] == want["lr_schedulers"], how
    lr = [c["optimizer_states"][0]["param_groups"][0]["lr"] for c in (want, got)]
    assert lr[0] == lr[1], how
    assert want["state_dict"].keys() == got["state_dict"].keys()
    assert all(torch.equal(want["state_dict"][k], got["state_dict"][k]) for k in want["state_dict"]), how
    assert last_val_loss(resumed) == last_val_loss(reference), how
    assert stray(tmp_path, cache_dir) == [], how


def test_a_damaged_checkpoint_is_refused_in_one_line(tmp_path, cache_dir, train_args, trained_ckpt,
                                                     data_root):
    from maskgit.errors import CheckpointError
    from maskgit.tasks.eval import evaluate

    damaged = tmp_path / "last.ckpt"
    damaged.write_bytes(trained_ckpt.read_bytes())
    seal_path(damaged).write_bytes(seal_path(trained_ckpt).read_bytes())
    corrupt(damaged, "zeroed")  # it still loads: only the seal tells
    proc = subprocess.run(command("train.py", *train_args, f"ckpt_path={damaged}"), cwd=tmp_path,
                          env=environment(cache_dir), capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: ") and str(damaged) in lines[0] and "sha256 differs" in lines[0]
    cfg = compose_config("eval", [f"ckpt_path={damaged}", f"data.root={data_root}",
                                  "metrics.fid.enabled=false", "logger=csv"], tmp_path / "eval", cache_dir)
    with pytest.raises(CheckpointError, match="sha256 differs"):
        evaluate(cfg)


# --- evaluation ----------------------------------------------------------------------------------

def eval_args(trained_ckpt: Path, data_root: Path, inception_weights: Path) -> list[str]:
    return [*eval_overrides(trained_ckpt, data_root, inception_weights, n_test=16), "total_iter=4",
            "metrics.fid.enabled=false"]


def outcome(run_dir: Path) -> dict:
    """What an evaluation produced, without timings and paths."""
    report = json.loads((run_dir / "metrics.json").read_text())
    images = {p.name: p.read_bytes() for p in sorted((run_dir / "test_results").iterdir())}
    return {"metrics": report["metrics"], "images": images}


@pytest.fixture
def uninterrupted_evaluation(tmp_path, cache_dir, trained_ckpt, data_root, inception_weights) -> Path:
    from maskgit.tasks.eval import evaluate

    out = tmp_path / "reference"
    evaluate(compose_config("eval", eval_args(trained_ckpt, data_root, inception_weights), out, cache_dir))
    return out


def test_evaluation_killed_then_run_again_gives_the_same_results(tmp_path, cache_dir, trained_ckpt, data_root,
                                                                 inception_weights, uninterrupted_evaluation):
    args = eval_args(trained_ckpt, data_root, inception_weights)
    how = run_killed(command("eval.py", *args), tmp_path, cache_dir, kill_moment("eval", 6, 15))
    killed = runs(tmp_path, "eval")  # none when killed before Hydra made its folder
    if killed and not (killed[0] / "metrics.json").exists():  # nothing in its folder looks like a result
        assert not (killed[0] / "test_results").exists() and not (killed[0] / "pictures").exists(), how
    run(command("eval.py", *args), tmp_path, cache_dir)
    (again,) = [d for d in runs(tmp_path, "eval") if d not in killed]
    assert outcome(again) == outcome(uninterrupted_evaluation), how
    assert stray(again, cache_dir) == [], how


def test_two_evaluations_started_at_once_keep_to_their_own_folders_and_the_caches(
        tmp_path, trained_ckpt, data_root, inception_weights, uninterrupted_evaluation):
    """Both encode and cache the same files at the same time, log to wandb, and write nothing outside
    their run folders and the caches (a fresh home and temporary folder show what they wrote)."""
    args = [*eval_args(trained_ckpt, data_root, inception_weights), "logger=wandb"]
    work, home, tmp = tmp_path / "work", tmp_path / "home", tmp_path / "tmp"
    for folder in (work, home, tmp):
        folder.mkdir()
    env = {**environment(tmp_path / "cache"), "HOME": str(home), "TMPDIR": str(tmp)}
    env.pop("XDG_CACHE_HOME", None)
    procs = [subprocess.Popen(command("eval.py", *args), cwd=work, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    first, second = runs(work, "eval")
    assert outcome(first) == outcome(second) == outcome(uninterrupted_evaluation)
    assert json.loads((first / "metrics.json").read_text())["config"]["paths"]["output_dir"] == str(first)
    assert stray(tmp_path) == []
    allowed = (first, second, work / "logs" / "eval" / "points", tmp_path / "cache",
               home / ".cache" / "matplotlib")  # matplotlib's font cache: torchmetrics imports pyplot
    written = [p for folder in (work, home, tmp) for p in folder.rglob("*") if p.is_file()]
    assert [p for p in written if not any(p.is_relative_to(a) for a in allowed)] == []


# --- a sweep -------------------------------------------------------------------------------------

TOTAL_ITER = (2, 3)


def sweep_args(trained_ckpt: Path, data_root: Path) -> list[str]:
    return [f"ckpt_path={trained_ckpt}", f"data.root={data_root}", "data.limit.test=8", "data.batch_size=8",
            "metrics.fid.enabled=false", "trainer=cpu", "trainer.enable_progress_bar=false", "logger=csv",
            "pictures.num_images=0", "pictures.grid_images=0", "mask_func=cosine",
            "temperature=1.0"]


def sweep_metrics(sweep: Path) -> dict[int, dict]:
    """Each point's metrics.json, by total_iter."""
    jobs = [job for job in sweep.iterdir() if job.name.isdigit()]
    reports = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    return {r["config"]["total_iter"]: r for r in reports}


def test_a_killed_sweep_run_again_reuses_what_finished_and_equals_uninterrupted_runs(
        tmp_path, cache_dir, trained_ckpt, data_root):
    from maskgit.tasks.eval import evaluate

    args = sweep_args(trained_ckpt, data_root)
    reference = {t: evaluate(compose_config("eval", [*args, f"total_iter={t}"], tmp_path / f"ref{t}",
                                            cache_dir))["metrics"] for t in TOTAL_ITER}
    multirun = ["-m", *args, f"total_iter={','.join(map(str, TOTAL_ITER))}"]
    how = run_killed(command("eval.py", *multirun), tmp_path, cache_dir, kill_moment("sweep", 8, 30))
    run(command("eval.py", *multirun), tmp_path, cache_dir)
    *_, again = runs(tmp_path, "eval", "multiruns")
    points = sweep_metrics(again)
    assert {t: r["metrics"] for t, r in points.items()} == reference, how
    assert stray(again, cache_dir) == [], how

    # a damaged stored point is named, computed again, and gives the same metrics
    entry = Path(points[3]["point"]["store"])
    corrupt(entry, "zeroed")
    run(command("eval.py", *multirun), tmp_path, cache_dir)
    *_, third = runs(tmp_path, "eval", "multiruns")
    points = sweep_metrics(third)
    assert {t: r["metrics"] for t, r in points.items()} == reference
    assert [t for t, r in points.items() if not r["skipped"]] == [3]
    assert f"rebuilding sweep point {entry}" in (third / "1" / "eval.log").read_text()

"""Scale-out as a user runs it: a sweep over every GPU (Ray, told this CPU machine has two GPUs, assigns
them exactly as on real hardware), the SLURM path through submitit's local executor, training on two
nodes over loopback, and Lightning reading a SLURM job's variables. Launcher settings that cannot
work are one line before any job starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli, tiny_train_overrides
from omegaconf import open_dict
from test_sweeps import eval_args, run_sweep, setup  # noqa: F401  (setup: the tiny trained model)

from maskgit.sweeps.shared_storage import local_only
from maskgit.sweeps.table import main as fid_table

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason='pip install -e ".[ray]"')
GRID = ["mask_func=linear,cosine,square", "total_iter=2", "sweet_spot=3,-1"]  # 3 points and 3 n/a


@pytest.fixture
def ray_args(monkeypatch):
    """`hydra/launcher=gpus` told the machine has 2 GPUs; Ray's session files in a short private folder
    (its socket paths must stay short), no token file in the home folder; no Ray process left after."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    yield ["hydra/launcher=gpus", "hydra.launcher.ray.init.num_gpus=2", "hydra.launcher.ray.init.num_cpus=2",
           f"hydra.launcher.ray.init._temp_dir={temp}"]
    assert ray_processes(temp) == [], "Ray processes outlived the sweep"
    shutil.rmtree(temp, ignore_errors=True)


def ray_processes(temp: Path) -> list[int]:
    """Processes whose command line names the sweep's Ray folder (raylet, GCS, workers)."""
    time.sleep(1)  # the driver's exit stops them; give them a moment
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(temp).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def computed(points: list[dict]) -> list[dict]:
    return [p for p in points if not p.get("not_applicable") and not p["skipped"]]


@pytest.mark.slow
def test_gpus_launcher_runs_one_point_per_gpu_and_equals_one_process(setup, tmp_path, ray_args):  # noqa: F811
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    one_dir, one = run_sweep(tmp_path / "one", eval_args(setup, *GRID, fid=False))
    start = time.perf_counter()
    ray_dir, points = run_sweep(tmp_path / "ray", eval_args(setup, *ray_args, *GRID, fid=False))
    print(f"gpus launcher: {len(points)} points in {time.perf_counter() - start:.1f} s")

    # point for point: the same tokens; pixel metrics to 1e-4 (float rounding: Ray sets each worker's
    # OMP_NUM_THREADS to its num_cpus, so the CPU sums in another order than in one process)
    for ray_point, one_point in zip(points, one, strict=True):
        assert ray_point["metrics"].keys() == one_point["metrics"].keys()
        for name, value in one_point["metrics"].items():
            exact = name == "masked_token_accuracy"
            assert ray_point["metrics"][name] == (value if exact else pytest.approx(value, rel=1e-4)), name
    assert [bool(p.get("not_applicable")) for p in points] == [True, False] * 3
    assert len(computed(points)) == 3
    # every job, n/a ones included, held a GPU slot: which of the 2 the computed points get depends on
    # how fast the n/a jobs free theirs, so the placement checks are over all 6 jobs
    for p in points:  # the GPU Ray gave it, as CUDA_VISIBLE_DEVICES and as Ray's own record
        gpu = p["placement"]["ray_gpu_ids"]
        assert gpu in (["0"], ["1"]) and p["placement"]["cuda_visible_devices"] == gpu[0]
    assert {p["placement"]["ray_gpu_ids"][0] for p in points} == {"0", "1"}  # both GPUs used
    for a in points:  # one job per GPU at a time
        for b in points:
            if a is not b and a["placement"]["ray_gpu_ids"] == b["placement"]["ray_gpu_ids"]:
                wa, wb = a["wall_clock"], b["wall_clock"]
                assert wa["finished"] <= wb["started"] or wb["finished"] <= wa["started"], (wa, wb)
    # Ray starts a fresh worker process for every GPU task (its default for GPU tasks)
    assert len({p["placement"]["pid"] for p in points}) == 6

    assert fid_table([str(one_dir), "--wandb", "off"]) == 0
    assert fid_table([str(ray_dir), "--wandb", "off"]) == 0
    rows = lambda d: [r for r in (d / "fid_table.md").read_text().splitlines() if r.startswith("| ")]  # noqa: E731
    assert rows(ray_dir) == rows(one_dir) and len(rows(one_dir)) == 4  # header + 3 mask functions


@pytest.mark.slow
@pytest.mark.faults
def test_a_worker_killed_mid_point_loses_only_that_point(setup, tmp_path, ray_args):  # noqa: F811
    """kill -9 of the Ray worker computing a point: Ray runs that point again in a new worker (its
    max_retries), the others finish undisturbed, and the sweep run again computes nothing."""
    args = eval_args(setup, *ray_args, "mask_func=linear,cosine,square", "total_iter=2,3", fid=False)
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0",
           "MASKGIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "eval.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.monotonic() + 300
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        for log in tmp_path.glob("logs/eval/multiruns/*/[0-9]*/eval.log"):
            text = log.read_text()
            if "point placement" in text and "done already" not in text and "results:" not in text:
                victim = (log.parent, json.loads(text.split("point placement: ")[1].splitlines()[0])["pid"])
                # at once: the point has begun and still has its loading and decoding ahead (about a
                # second on a fast machine), so the kill lands mid-point however fast the machine
                os.kill(victim[1], signal.SIGKILL)
                break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=600)
    assert victim is not None, "no point was seen in flight"
    assert proc.returncode == 0, err[-3000:]
    (sweep,) = (tmp_path / "logs/eval/multiruns").iterdir()
    points = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in range(6)]
    again = json.loads((victim[0] / "metrics.json").read_text())
    assert again["placement"]["pid"] != victim[1]  # the killed point, computed by a new worker
    assert all(p.get("decoded_now", 0) in (0, 8) for p in points)

    rerun_dir, rerun = run_sweep(tmp_path, args)
    assert all(p["skipped"] and p["decoded_now"] == 0 for p in rerun)
    assert [p["metrics"] for p in rerun] == [p["metrics"] for p in points]


@pytest.mark.slow
def test_slurm_path_through_submitits_local_executor(setup, tmp_path):  # noqa: F811
    """Each point a submitit job in its own process, as hydra/launcher=slurm submits it; the points
    land in the same point store (which a sweep run again reuses: test_sweeps.py) and table."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='pip install -e ".[slurm]"')
    args = eval_args(setup, "hydra/launcher=slurm_local", "mask_func=linear,cosine", "total_iter=2",
                     fid=False)
    sweep, points = run_sweep(tmp_path, args)
    assert all(not p["skipped"] and p["decoded_now"] == 8 for p in points)
    jobs = {p["placement"]["submitit_job_id"] for p in points}
    assert None not in jobs and len({p["placement"]["pid"] for p in points}) == 2
    assert all(list((sweep / ".submitit" / job).glob("*_result.pkl")) for job in jobs)
    assert len(list((tmp_path / "logs/eval/points").glob("*.json"))) == 2
    assert fid_table([str(sweep), "--wandb", "off"]) == 0
    assert "2/2 points done" in (sweep / "fid_table.md").read_text()


# -- one line before any job -------------------------------------------------------------------------

def refusal(tmp_path: Path, *args: str) -> str:
    proc = run_cli("eval.py", "-m", *args, "total_iter=2,3", "trainer=cpu", cwd=tmp_path,
                   env={"RAY_AUTH_MODE": "disabled"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").rglob("metrics.json"))
    return lines[0]


def test_gpu_and_cluster_launchers_refuse_what_cannot_work_in_one_line(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"only its readability is checked before the jobs")
    if not torch.cuda.is_available():
        line = refusal(tmp_path, "hydra/launcher=gpus", f"ckpt_path={ckpt}")
        assert line.startswith("error: hydra/launcher=gpus gives each point 1 GPU(s) but this machine has 0")
        assert "hydra/launcher=parallel" in line
    line = refusal(tmp_path, "hydra/launcher=gpus", "hydra.launcher.ray.init.num_gpus=2",
                   "hydra.launcher.ray.remote.num_gpus=3", f"ckpt_path={ckpt}")
    assert "gives each point 3 GPU(s) but this machine told Ray it has 2" in line
    line = refusal(tmp_path, "hydra/launcher=gpus", "hydra.launcher.ray.init.num_gpus=2",
                   f"ckpt_path={tmp_path / 'gone.ckpt'}")
    assert line == (f"error: ckpt_path={tmp_path / 'gone.ckpt'} does not exist: every hydra/launcher=gpus "
                    "worker loads it")
    if local_only(tmp_path):
        line = refusal(tmp_path, "hydra/launcher=slurm", f"ckpt_path={ckpt}",
                       f"paths.cache_dir={tmp_path / 'cache'}")
        assert line.startswith(f"error: hydra/launcher=slurm runs points on other nodes, but "
                               f"paths.cache_dir={tmp_path / 'cache'} is on this machine's own")
        assert "shared storage" in line


def test_a_missing_ray_is_named_with_its_install_command(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from maskgit.errors import ConfigError
    from maskgit.sweeps.launchers import check_launcher

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["hydra/launcher=gpus", "ckpt_path=x.ckpt"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.choices = {"hydra/launcher": "gpus"}
        cfg.paths.root_dir = str(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    with pytest.raises(ConfigError, match=r'^hydra/launcher=gpus needs ray .*: pip install -e "\.\[ray\]"$'):
        check_launcher(cfg)


# -- training across nodes ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_on_two_nodes_over_loopback_ends_with_identical_weights(tmp_path, data_root, tiny_vqgan_path):
    """Two node processes, as `srun` or two shells would start them (Lightning's MASTER_ADDR,
    NODE_RANK, ... variables; gloo on CPU): the same steps, the same weights on both ranks."""
    port, digests = free_port(), tmp_path / "digests"
    base = [*tiny_train_overrides(data_root, tiny_vqgan_path), "trainer=ddp", "trainer.accelerator=cpu",
            "trainer.devices=1", "trainer.num_nodes=2",
            "+callbacks.weights_digest._target_=helpers.weights.WeightsDigest",
            f"+callbacks.weights_digest.out={digests}"]
    procs = []
    for node in (0, 1):
        env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "NODE_RANK": str(node), "WORLD_SIZE": "2", "LOCAL_RANK": "0",
               "GLOO_SOCKET_IFNAME": "lo", "MASKGIT_CACHE_DIR": str(tmp_path / "cache"),
               "PYTHONPATH": str(ROOT / "tests")}
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "train.py"), *base,
                                       f"hydra.run.dir={tmp_path / f'node{node}'}"], cwd=tmp_path, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    rank0, rank1 = ((digests / f"rank{r}.txt").read_text().split() for r in (0, 1))
    assert rank0 == rank1  # weights, steps and world size
    assert rank0[1:] == ["4", "2"]  # 128 images / 2 ranks / batch 16 = 4 steps on each
    assert (tmp_path / "node0" / "checkpoints" / "last.ckpt").exists()
    assert not (tmp_path / "node1" / "checkpoints").exists()  # rank 0 writes the checkpoints


def test_lightning_reads_a_slurm_jobs_variables(train_cfg, monkeypatch):
    """`srun python train.py trainer.num_nodes=2 trainer.devices=2`: each task finds its rank, node
    and the main address in SLURM's variables (here those of task 3: node 2, local rank 1)."""
    from hydra.utils import instantiate
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    slurm = {"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NAME": "train",
             "SLURM_JOB_ID": "4242", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
             "SLURM_NODELIST": "gpu[07-08]", "SLURM_JOB_NUM_NODES": "2"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    # The Trainer makes this process rank 3 for Lightning's rank-zero-only code (loggers, prints):
    # that global goes back with the variables, or later trainers in this process log nothing.
    from lightning.fabric.utilities.rank_zero import rank_zero_only as fabric_rank_zero_only
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
    for holder in (rank_zero_only, fabric_rank_zero_only):
        monkeypatch.setattr(holder, "rank", getattr(holder, "rank", 0))
    cfg = train_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.num_nodes=2")
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    env = trainer.strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment)
    assert (trainer.world_size, trainer.global_rank, trainer.node_rank, trainer.local_rank) == (4, 3, 1, 1)
    assert env.main_address == "gpu07" and 1024 < env.main_port < 65536
